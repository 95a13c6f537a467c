"""In-memory stand-ins for Firestore, Pub/Sub and GCS with the semantics our code relies on:
compare-and-set on a document version, schema-validated publishes, create-if-absent objects
with generations. For the rules of our own code, tested in-process through Flask's
test_client; what only the real servers can show stays in the end-to-end tests."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
import uuid
from pathlib import Path

from services.common.config import Settings
from services.common.errors import PermanentError
from services.pipeline import jobstate, usage
from services.pipeline.blobs import BlobStore, RangedObject, StoredObject
from services.pipeline.bus import Bus
from services.pipeline.handon import StageResult
from services.pipeline.jobstore import Conflict, JobStoreBase
from services.pipeline.neardup import ANY_VALUES, NearDuplicateIndex
from services.pipeline.push import register_stage
from services.pipeline.runtime import Runtime
from services.pipeline.topology import load_topology
from services.pipeline.web import create_service_app
from services.webhooks.endpoints import EndpointStore
from services.webhooks.secretbox import SecretBox
from tests.support.pushes import envelope


class MemoryJobStore(JobStoreBase):
    def __init__(self, ttl_days: int = 30):
        super().__init__(ttl_days)
        self.docs: dict[str, tuple[dict, int]] = {}
        self.segments: dict[str, dict[str, dict]] = {}  # job -> record id -> finished-segment record (or fan-in claim)
        self.segment_versions: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def _read(self, job_id):
        with self._lock:
            doc, version = self.docs.get(job_id, (None, 0))
            return (jobstate.apply(doc, {}) if doc is not None else None), version

    def _write_if(self, job_id, updates, version):
        with self._lock:
            doc, current = self.docs.get(job_id, (None, 0))
            if doc is None or current != version:
                raise Conflict()
            self.docs[job_id] = (jobstate.apply(doc, updates), next(self._versions))

    def _write(self, job_id, updates):
        with self._lock:
            doc, _ = self.docs[job_id]  # Firestore's update() fails on a missing document too
            self.docs[job_id] = (jobstate.apply(doc, updates), next(self._versions))

    def _create(self, job_id, doc):
        with self._lock:
            if job_id in self.docs:
                return False
            self.docs[job_id] = (jobstate.apply(doc, {}), next(self._versions))
            return True

    def find_stuck(self, statuses, cutoff, limit=500):
        with self._lock:
            docs = [d for d, _ in self.docs.values() if d["status"] in statuses and d["updated_at"] < cutoff]
        return sorted(docs, key=lambda d: d["updated_at"])[:limit]

    # Finished-segment records: a subcollection of the job in Firestore, which (like this) does
    # not need the job document to exist and is not deleted with it.
    def _create_segment(self, job_id, record_id, doc):
        with self._lock:
            records = self.segments.setdefault(job_id, {})
            if record_id in records:
                return False
            records[record_id] = jobstate.apply(doc, {})
            self.segment_versions[(job_id, record_id)] = next(self._versions)
            return True

    def _read_segment(self, job_id, record_id):
        with self._lock:
            doc = self.segments.get(job_id, {}).get(record_id)
            return (jobstate.apply(doc, {}) if doc is not None else None), self.segment_versions.get((job_id, record_id), 0)

    def _replace_segment_if(self, job_id, record_id, doc, version):
        with self._lock:
            records = self.segments.setdefault(job_id, {})
            if record_id not in records or self.segment_versions.get((job_id, record_id)) != version:
                raise Conflict()
            records[record_id] = jobstate.apply(doc, {})
            self.segment_versions[(job_id, record_id)] = next(self._versions)

    def _segment_records(self, job_id, stage):
        with self._lock:
            return [jobstate.apply(r, {}) for r in self.segments.get(job_id, {}).values() if r.get("stage") == stage]

    def _count_segments(self, job_id, stage):
        return len(self._segment_records(job_id, stage))

    def _delete_segments(self, job_id, stage):
        with self._lock:
            records = self.segments.get(job_id, {})
            gone = [k for k, r in records.items() if r.get("stage") == stage]
            if jobstate.fan_in_claim_id(stage) in records:  # its fan-in claim too, as JobStore does
                records.pop(jobstate.fan_in_claim_id(stage))
            for k in gone:
                del records[k]
            return len(gone)


class MemoryEndpointStore(EndpointStore):
    """EndpointStore's rules over a dict: only its Firestore calls are replaced, with their
    semantics (create fails on an existing id, update on a missing one, compare-and-set on a
    version)."""

    def __init__(self, box: SecretBox | None):
        super().__init__("memory", box)
        self.docs: dict[str, tuple[dict, int]] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def _create(self, endpoint_id, doc):
        with self._lock:
            if endpoint_id in self.docs:
                raise ValueError(f"{endpoint_id} exists")
            self.docs[endpoint_id] = (jobstate.apply(doc, {}), next(self._versions))

    def _read(self, endpoint_id):
        with self._lock:
            doc, version = self.docs.get(endpoint_id, (None, 0))
            return (jobstate.apply(doc, {}) if doc is not None else None), version

    def _write_if(self, endpoint_id, updates, version):
        with self._lock:
            doc, current = self.docs.get(endpoint_id, (None, 0))
            if doc is None or current != version:
                raise Conflict()
            self.docs[endpoint_id] = (jobstate.apply(doc, updates), next(self._versions))

    def update(self, endpoint_id, fields):
        with self._lock:
            doc, _ = self.docs[endpoint_id]
            self.docs[endpoint_id] = (jobstate.apply(doc, fields), next(self._versions))

    def delete(self, endpoint_id):
        with self._lock:
            self.docs.pop(endpoint_id, None)

    def for_client(self, client_id):
        with self._lock:
            docs = [jobstate.apply(d, {}) for d, _ in self.docs.values() if d["client_id"] == client_id]
        return sorted(docs, key=lambda d: d["created_at"])


@dataclasses.dataclass
class Published:
    topic: str
    payload: dict
    attributes: dict
    message_id: str


class MemoryBus(Bus):
    """Bus.publish as in production (schema check, attributes); the wire is a list."""

    def __init__(self, topology, schemas_dir):
        super().__init__("memory", topology, schemas_dir)
        self.messages: list[Published] = []

    def publish_raw(self, topic, data, attributes):
        message_id = uuid.uuid4().hex[:12]
        self.messages.append(Published(topic, json.loads(data), dict(attributes), message_id))
        return message_id

    def on(self, topic: str, job_id: str | None = None) -> list[Published]:
        return [m for m in self.messages if m.topic == topic and (job_id is None or m.attributes.get("job_id") == job_id)]


class MemoryBlobs(BlobStore):
    def __init__(self):
        super().__init__("memory")
        self.objects: dict[tuple[str, str], tuple[bytes, str, str]] = {}  # -> (data, content type, generation)
        self._generations = itertools.count(1_000_001)
        self.created_at: dict[tuple[str, str], float] = {}

    def put_if_absent(self, bucket, name, data, content_type, cache_control=None):
        data = data.read_bytes() if isinstance(data, Path) else data
        key = (bucket, name)
        created = key not in self.objects
        if created:
            self.objects[key] = (bytes(data), content_type, str(next(self._generations)))
            usage.wrote(name, len(data))
        data, ctype, gen = self.objects[key]
        return StoredObject(bucket, name, gen, len(data), ctype, created)

    def get_bytes(self, bucket, name, generation=None):
        found = self.objects.get((bucket, name))
        if found is None or (generation and found[2] != str(generation)):
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing")
        return found[0]

    def find_bytes(self, bucket, name):
        found = self.objects.get((bucket, name))
        return found[0] if found else None

    def read_head(self, bucket, name, generation, size=64):
        return self.get_bytes(bucket, name, generation)[:size]

    def download_to(self, bucket, name, generation, fileobj):
        fileobj.seek(0)
        fileobj.truncate()
        fileobj.write(self.get_bytes(bucket, name, generation))
        fileobj.flush()

    def copy_if_absent(self, bucket, name, generation, new_name, content_type):
        return self.put_if_absent(bucket, new_name, self.get_bytes(bucket, name, generation), content_type)

    def delete(self, bucket, name):
        self.objects.pop((bucket, name), None)

    def try_create(self, bucket, name, data=b""):
        if (bucket, name) in self.objects:
            return None
        self.created_at[(bucket, name)] = time.time()
        return self.put_if_absent(bucket, name, data, "application/octet-stream").generation

    def created(self, bucket, name):
        found = self.objects.get((bucket, name))
        return (found[2], self.created_at.get((bucket, name), 0.0)) if found else None

    def delete_generation(self, bucket, name, generation):
        found = self.objects.get((bucket, name))
        if found and found[2] == str(generation):
            self.objects.pop((bucket, name), None)

    def open_ranged(self, bucket, name, generation, block_bytes, blocks):
        data = self.get_bytes(bucket, name, generation)
        return RangedObject(lambda start, n: data[start:start + n], len(data), block_bytes, blocks), len(data)

    def delete_prefix(self, bucket, prefix):
        gone = [k for k in list(self.objects) if k[0] == bucket and k[1].startswith(prefix)]
        for k in gone:
            self.objects.pop(k, None)
        return len(gone)


class MemoryNearDuplicates(NearDuplicateIndex):
    """The near-duplicate index in memory, answering its one query as Firestore does (array-contains-any, at
    most ANY_VALUES values); `queries` and `read` count what a lookup asked and how many documents it read."""

    def __init__(self):
        self.entries: dict[str, dict[str, dict]] = {}  # owner -> job_id -> doc
        self.queries = 0
        self.read = 0

    def _put(self, owner, job_id, doc):
        self.entries.setdefault(owner, {})[job_id] = dict(doc)

    def _delete(self, owner, job_id):
        self.entries.get(owner, {}).pop(job_id, None)

    def _having_any(self, owner, tokens):
        out = {}
        for i in range(0, len(tokens), ANY_VALUES):
            values = set(tokens[i:i + ANY_VALUES])
            assert 0 < len(values) <= ANY_VALUES, "Firestore refuses array-contains-any with more values"
            self.queries += 1
            for job_id, doc in self.entries.get(owner, {}).items():
                if values & set(doc["bands"]):
                    self.read += 1
                    out[job_id] = {"phash": doc["phash"], "created_at": doc["created_at"]}
        return out


def memory_runtime(**settings) -> Runtime:
    """A Runtime whose store, bus and blobs are in memory; `settings` override Settings fields."""
    base = Settings.from_env()
    settings.setdefault("public_base_url", "https://api.example.test")  # public events link to it
    base = dataclasses.replace(base, push_audience="", push_verification="off", **settings)
    topology = load_topology(base.topology_file)
    return Runtime(settings=base, topology=topology, bus=MemoryBus(topology, base.schemas_dir),
                   jobs=MemoryJobStore(base.job_ttl_days), blobs=MemoryBlobs(), verifier=None,
                   near_duplicates=MemoryNearDuplicates())


# --- a whole pipeline in memory: the real stage plumbing, handlers a test steers ---------------

SOURCE = {"uri": "gs://mediarelay-originals/originals/job", "bucket": "mediarelay-originals",
          "name": "originals/job", "generation": "1", "content_type": "image/jpeg", "size": 10}
ANALYSIS = {"format": "jpeg", "width": 4, "height": 3}


def ingested(job_id):
    return {"job_id": job_id, "kind": "image", "source": SOURCE, "submitted_at": "2026-01-01T00:00:00Z"}


def analyzed(job_id):
    return {"job_id": job_id, "kind": "image", "source": SOURCE, "analysis": ANALYSIS}


def rendered(job_id):
    return {**analyzed(job_id), "renditions": []}


class Pipeline:
    """One in-memory runtime and the three stage endpoints, with handlers the test steers."""

    def __init__(self, **settings):
        self.rt = memory_runtime(**settings)
        self.calls = dict.fromkeys(jobstate.STAGES, 0)
        self.before = {}  # stage -> callable run inside the handler (raise to fail)
        self.clients = {}
        for stage in jobstate.STAGES:
            app, _ = create_service_app(stage, runtime=self.rt)
            register_stage(app, self.rt, stage, self._handler(stage))
            self.clients[stage] = app.test_client()

    def _handler(self, stage):
        def handle(rt, job, msg):
            self.calls[stage] += 1
            if stage in self.before:
                self.before[stage](msg["job_id"])
            if stage == "analyze":
                return StageResult(publish=[("media-analyzed", analyzed(msg["job_id"]))], job_fields={"analysis": ANALYSIS})
            if stage == "render":
                return StageResult(publish=[("media-rendered", rendered(msg["job_id"]))], job_fields={"renditions": []})
            return StageResult(job_fields={"analysis": ANALYSIS, "renditions": []}, final="completed")

        return handle

    def seed(self, job_id="job-00000001"):
        self.rt.jobs.create(job_id, {"kind": "image", "source": SOURCE})
        return job_id

    def schema_for(self, stage):
        return self.rt.topology.schema_of_topic(self.rt.topology.input_topic(stage))

    def push(self, stage, payload, schema=None, **kw):
        return self.clients[stage].post("/push", json=envelope(payload, schema or self.schema_for(stage), **kw))

    def last(self, topic, job_id):
        return self.rt.bus.on(topic, job_id)[-1].payload

    def run(self, job_id):
        """Pub/Sub's part: deliver each stage's input as it is published."""
        assert self.push("analyze", ingested(job_id)).status_code == 204
        assert self.push("render", self.last("media-analyzed", job_id)).status_code == 204
        assert self.push("notify", self.last("media-rendered", job_id)).status_code == 204

    def job(self, job_id):
        return self.rt.jobs.get(job_id)

    def events(self, job_id):
        return [m.payload for m in self.rt.bus.on("media-events", job_id)]

    def dead_letters(self, stage):
        return self.rt.bus.on(self.rt.topology.subscription_for_service(stage).dead_letter_topic)

    def age(self, job_id, seconds=3600):
        self.rt.jobs._write(job_id, {"updated_at": jobstate_now() - dt.timedelta(seconds=seconds)})


def jobstate_now():
    return dt.datetime.now(dt.UTC)
