"""Fault injection against the local cloud, for the fault tests and `bench/faults_bench.py`.

Every scenario drives real uploads through the real services and audits the outcome the
way a user would: each job final, one event per job, each rendition written once.
All traffic stays on 127.0.0.1; every loop is bounded in count and time.
"""
from __future__ import annotations

import io
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from google.cloud import pubsub_v1, storage
from PIL import Image

from services.client import auth_headers
from services.ingest.public_job import stored_files
from services.pipeline.jobstate import FINAL

from .processes import ProcessManager
from .stack import SERVICES, StackConfig, restart_cloud, service_procs
from .taps import TopicTap, free_port


def small_jpeg(seed: int) -> bytes:
    """A distinct little photo-like JPEG per seed (distinct bytes: no content dedupe)."""
    im = Image.radial_gradient("L").resize((320, 240)).convert("RGB")
    im.putpixel((seed % 320, (seed // 320) % 240), (seed % 256, 0, 255))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, comment=f"{seed}-{uuid.uuid4()}".encode())
    return buf.getvalue()


def submit_many(ingest_url: str, n: int, workers: int = 8) -> list[str]:
    def one(i: int) -> str:
        resp = requests.post(f"{ingest_url}/v1/uploads", data=small_jpeg(i),
                             headers={"Content-Type": "image/jpeg", **auth_headers()}, timeout=60)
        resp.raise_for_status()
        return resp.json()["job_id"]

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def wait_final(ingest_url: str, job_ids: list[str], timeout: float, tick=None, every: float = 1.0) -> dict[str, dict]:
    """Poll until every job is final or `timeout` passes; `tick()` runs between polls."""
    docs: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    with requests.Session() as http:
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                resp = http.get(f"{ingest_url}/v1/jobs/{job_id}", headers=auth_headers(), timeout=30)
                if resp.status_code == 200:
                    docs[job_id] = resp.json()
                    if docs[job_id]["status"] in FINAL:
                        pending.discard(job_id)
            if pending:
                if tick:
                    tick()
                time.sleep(every)
    return docs


@dataclass
class Audit:
    jobs: int
    completed: int = 0
    lost: int = 0  # not final when the scenario's time ran out
    duplicate_events: int = 0
    missing_events: int = 0  # final, but its event neither seen nor recorded as published
    # Recorded as published (with a message id) yet never seen: only when the Pub/Sub
    # emulator restarts between a publish and our pull, since it keeps nothing.
    events_lost_by_emulator: int = 0
    renditions_written_twice: int = 0
    retried_calls: int = 0
    stage_redeliveries: int = 0  # stage attempts beyond the first
    redriven_by_sweep: int = 0
    drain_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


def audit(docs: dict[str, dict], job_ids: list[str], events: TopicTap, drain_seconds: float) -> Audit:
    time.sleep(1.0)  # let stragglers (a duplicate's late publish) arrive before counting
    events.drain()
    result = Audit(jobs=len(job_ids), drain_seconds=round(drain_seconds, 1))
    gcs = storage.Client()
    for job_id in job_ids:
        doc = docs.get(job_id, {})
        if doc.get("status") not in FINAL:
            result.lost += 1
            result.notes.append(f"{job_id}: {doc.get('status', 'no document')}")
            continue
        result.completed += doc["status"] == "completed"
        ids = [e["id"] for _, e in events.for_job(job_id)]
        result.duplicate_events += max(0, len(ids) - 1)
        if not ids:
            if (doc.get("final_event") or {}).get("published"):
                result.events_lost_by_emulator += 1
            else:
                result.missing_events += 1
        for stage in doc.get("stages", {}).values():
            result.retried_calls += stage.get("retried_calls", 0)
            result.stage_redeliveries += max(0, stage.get("attempts", 0) - 1)
        for r in outputs_of(gcs, doc):
            bucket, _, name = r["uri"].removeprefix("gs://").partition("/")
            blob = gcs.bucket(bucket).get_blob(name)
            # Written once: the object is still the generation the job recorded, never replaced.
            replaced = "created_before" in r and blob is not None and blob.time_created > r["created_before"]
            if blob is None or str(blob.generation) != r["generation"] or blob.metageneration != 1 or replaced:
                result.renditions_written_twice += 1
                result.notes.append(f"{job_id}: {name} written again")
    return result


def outputs_of(gcs: storage.Client, doc: dict) -> list[dict]:
    """Every stored output of a job with the generation it recorded: renditions, the storyboard,
    and for a video the playlists and the MP4. Each HLS media segment is listed with the render
    fan-in's time instead (the segment results naming their generations are deleted at the
    fan-in): written once, it was created before that."""
    refs = stored_files(doc)
    video = doc.get("video")
    fanned_in_at = ((doc.get("stages", {}).get("render") or {}).get("segments") or {}).get("fanned_in_at")
    if video and fanned_in_at:
        bucket = video["mp4"]["uri"].removeprefix("gs://").partition("/")[0]
        for blob in gcs.bucket(bucket).list_blobs(prefix=f"renditions/{doc['job_id']}/hls/"):
            if blob.name.endswith(".ts"):
                refs.append({"uri": f"gs://{bucket}/{blob.name}", "generation": str(blob.generation),
                             "created_before": fanned_in_at})
    return refs


def run_jobs(cfg: StackConfig, n: int, timeout: float, during=None, tick=None, submit=None) -> Audit:
    """Submit n jobs (small JPEGs, or `submit(n)` -> job ids), run `during()` while they are in
    flight, wait, audit."""
    events = TopicTap(cfg.project, "media-events")
    try:
        started = time.monotonic()
        job_ids = submit(n) if submit else submit_many(cfg.url("ingest"), n)
        if during:
            during(events, job_ids)
        wait_final(cfg.url("ingest"), job_ids, timeout, tick=tick)
        # The audit reads what operators see (the whole document), not the clients' view.
        from services.pipeline.jobstore import JobStore

        store = JobStore(cfg.project)
        docs = {job_id: store.get(job_id) or {} for job_id in job_ids}
        return audit(docs, job_ids, events, time.monotonic() - started)
    finally:
        events.close()


# --- the faults ---------------------------------------------------------------------------

class DuplicatingProxy:
    """Stands between Pub/Sub and the services and delivers every push twice, concurrently."""

    def __init__(self, targets: dict[str, str]):
        self.targets = targets  # service name -> base URL
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                service, _, path = self.path.lstrip("/").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                url = f"{proxy.targets[service]}/{path}"
                with ThreadPoolExecutor(2) as pool:
                    answers = list(pool.map(lambda _: _post(url, body, headers), range(2)))
                self.send_response(answers[0])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{service}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def _post(url: str, body: bytes, headers: dict) -> int:
    try:
        return requests.post(url, data=body, headers=headers, timeout=300).status_code
    except requests.RequestException:
        return 503


def set_push_endpoints(cfg: StackConfig, url_for) -> None:
    """Point every push subscription at url_for(service) + path (the emulator's live config)."""
    from services.pipeline.topology import load_topology

    subscriber = pubsub_v1.SubscriberClient()
    for sub in load_topology().push_subscriptions.values():
        subscriber.modify_push_config(request={
            "subscription": subscriber.subscription_path(cfg.project, sub.name),
            "push_config": {"push_endpoint": url_for(sub.service) + sub.path}})


def restart_services(cfg: StackConfig, names=SERVICES, extra_env: dict | None = None,
                     sig: int = signal.SIGTERM) -> None:
    """Stop (with `sig`; SIGKILL is a crash) and start services, optionally with other settings."""
    pm = ProcessManager(cfg.state_dir)
    procs = [p for p in service_procs(cfg) if p.name in names]
    pm.stop_many([p.name for p in procs], sig=sig)
    for p in procs:
        p.env = {**p.env, **(extra_env or {})}
        pm.start(p)
    for p in procs:
        pm.wait_healthy(p)


@contextmanager
def extra_instance(cfg: StackConfig, service: str, env: dict, name: str | None = None):
    """One more instance of `service` beside the stack's own, with other settings (a fault,
    verification on...). Pub/Sub does not push to it; tests post to it directly."""
    [proc] = [p for p in service_procs(cfg) if p.name == service]
    port = free_port()
    proc.name = name or f"{service}-extra-{port}"
    proc.env = {**proc.env, "PORT": str(port), **env}
    proc.health_url = f"http://127.0.0.1:{port}/healthz"
    pm = ProcessManager(cfg.state_dir)
    pm.start(proc)
    try:
        pm.wait_healthy(proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        pm.stop(proc.name)


def scenario_duplicates(cfg: StackConfig, n: int, timeout: float = 300, submit=None) -> Audit:
    """(a) Every push delivered twice, concurrently."""
    with DuplicatingProxy({s: cfg.url(s) for s in SERVICES}) as proxy:
        set_push_endpoints(cfg, proxy.url)
        try:
            return run_jobs(cfg, n, timeout, submit=submit)
        finally:
            set_push_endpoints(cfg, cfg.url)


def scenario_kill_render(cfg: StackConfig, n: int, timeout: float = 300, submit=None, when=None) -> Audit:
    """(b) kill -9 of render while jobs are in flight (half a second in, or once `when(job_ids)`
    returns), then a restart."""

    def crash(events: TopicTap, job_ids: list[str]):
        if when:
            when(job_ids)
        else:
            time.sleep(0.5)
        restart_services(cfg, ["render"], sig=signal.SIGKILL)

    return run_jobs(cfg, n, timeout, during=crash, submit=submit)


def scenario_restart_cloud(cfg: StackConfig, n: int, timeout: float = 300, submit=None, when=None) -> Audit:
    """(c) The local cloud restarted with messages pending (0.2 s in, or once `when(job_ids)`
    returns); the sweep re-drives what the Pub/Sub emulator forgot (Pub/Sub itself would have
    kept them)."""

    def restart(events: TopicTap, job_ids: list[str]):
        if when:
            when(job_ids)
        else:
            time.sleep(0.2)  # just submitted: most are between stages
        # The emulator forgets subscriptions too: keep what the tap saw, re-subscribe at once.
        restart_cloud(cfg, say=lambda *_: None, before_stop=events.drain, after_provision=events.create)

    redriven = []

    def sweep():
        resp = requests.post(f"{cfg.url('notify')}/ops/sweep", params={"older_than_seconds": 5}, timeout=120)
        redriven.append(resp.json()["redriven"])

    result = run_jobs(cfg, n, timeout, during=restart, tick=_every(5.0, sweep), submit=submit)
    result.redriven_by_sweep = sum(redriven)
    return result


def scenario_transient_faults(cfg: StackConfig, n: int, rate: float = 0.2, timeout: float = 300) -> Audit:
    """(d) A share of all storage and Firestore calls fail with 503."""
    restart_services(cfg, extra_env={"FAULT_INJECTION": f"storage={rate},firestore={rate}"})
    try:
        return run_jobs(cfg, n, timeout)
    finally:
        restart_services(cfg)


def _every(seconds: float, fn):
    last = [time.monotonic()]

    def tick():
        if time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            fn()

    return tick
