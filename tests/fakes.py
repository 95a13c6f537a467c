"""In-memory stand-ins for Firestore, Pub/Sub and GCS with the semantics our code relies on:
compare-and-set on a document version, schema-validated publishes, create-if-absent objects
with generations. For the rules of our own code, tested in-process through Flask's
test_client; what only the real servers can show stays in the end-to-end tests."""
from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import uuid

from services.common import jobstate
from services.common.blobs import BlobStore, StoredObject
from services.common.bus import Bus
from services.common.config import Settings
from services.common.errors import PermanentError
from services.common.runtime import Runtime
from services.common.status import Conflict, JobStoreBase
from services.common.topology import load_topology


class MemoryJobStore(JobStoreBase):
    def __init__(self, ttl_days: int = 30):
        super().__init__(ttl_days)
        self.docs: dict[str, tuple[dict, int]] = {}
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

    def put_if_absent(self, bucket, name, data, content_type, cache_control=None):
        key = (bucket, name)
        created = key not in self.objects
        if created:
            self.objects[key] = (bytes(data), content_type, str(next(self._generations)))
        data, ctype, gen = self.objects[key]
        return StoredObject(bucket, name, gen, len(data), ctype, created)

    def get_bytes(self, bucket, name, generation=None):
        found = self.objects.get((bucket, name))
        if found is None or (generation and found[2] != str(generation)):
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing")
        return found[0]

    def read_head(self, bucket, name, generation, size=64):
        return self.get_bytes(bucket, name, generation)[:size]


def memory_runtime(**settings) -> Runtime:
    """A Runtime whose store, bus and blobs are in memory; `settings` override Settings fields."""
    base = Settings.from_env()
    base = dataclasses.replace(base, push_audience="", **settings)
    topology = load_topology(base.topology_file)
    return Runtime(settings=base, topology=topology, bus=MemoryBus(topology, base.schemas_dir),
                   jobs=MemoryJobStore(base.job_ttl_days), blobs=MemoryBlobs(), verifier=None)
