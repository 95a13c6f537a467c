"""The console's requests with 10 000 jobs in the Firestore emulator: p50/p95 per page.

The jobs are written straight into Firestore (batches of 500), spread over the last day with the
mix a busy day has: mostly completed, some failed (three error classes), some running or parked,
images and videos, eight clients. Each page is then asked CONSOLE_BENCH_RUNS times at the console
itself, with an operator assertion signed by the local IAP key (what the front would add).

An emulator figure: the emulator runs queries without indexes (a scan), where Firestore reads the
composite indexes terraform/firestore.tf declares (tests/unit/test_console_indexes.py)."""
from __future__ import annotations

import datetime as dt
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from google.cloud import firestore

from localcloud.iap_front import assertion, local_iap_key
from localcloud.stack import LOCAL_CONSOLE_AUDIENCE, private_stack
from services.console.auth import IAP_HEADER
from services.pipeline.jobstate import STAGES, new_job
from services.pipeline.jobstore import JobStore

JOBS = int(os.environ.get("CONSOLE_BENCH_JOBS", "10000"))
RUNS = int(os.environ.get("CONSOLE_BENCH_RUNS", "20"))
CLIENTS = [f"client{i}" for i in range(8)]
ERRORS = ["corrupt-media", "unsupported-media", "limit-exceeded"]


def job_id(i: int) -> str:
    return f"bench{i:027d}"


def fake_job(i: int, now: dt.datetime, rng: random.Random) -> dict:
    created = now - dt.timedelta(seconds=rng.uniform(0, 86400))
    job = dict(new_job(job_id(i), {"kind": rng.choice(["image", "image", "image", "video"]),
                                           "owner": rng.choice(CLIENTS)}, created, dt.timedelta(days=30)))
    roll = rng.random()
    took = dt.timedelta(seconds=rng.uniform(1, 90))
    if roll < 0.85:
        job.update(status="completed", finished_at=created + took, updated_at=created + took,
                   stages={s: {"state": "done", "attempts": 1, "started_at": created, "finished_at": created + took}
                           for s in STAGES})
    elif roll < 0.95:
        job.update(status="failed", finished_at=created + took, updated_at=created + took,
                   error={"stage": "analyze", "error_class": rng.choice(ERRORS), "reason": "bench failure"})
    else:
        job.update(status=rng.choice(["analyzing", "rendering", "dead-lettered"]))
    return job


def seed(project: str, n: int) -> None:
    db = firestore.Client(project=project)
    now, rng = dt.datetime.now(dt.UTC), random.Random(7)
    for start in range(0, n, 500):
        batch = db.batch()
        for i in range(start, min(n, start + 500)):
            job = fake_job(i, now, rng)
            batch.set(db.collection(JobStore.collection).document(job["job_id"]), job)
        batch.commit()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the local cloud it started
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-console-bench") as cfg:
        t0 = time.monotonic()
        seed(cfg.project, JOBS)
        print(f"{JOBS} jobs written in {time.monotonic() - t0:.1f} s")
        pem = local_iap_key(cfg.state_dir).read_bytes()
        base = cfg.url("console")
        pages = {
            "Jobs (newest 50 + counts per state)": "/jobs",
            "Jobs, state=failed": "/jobs?state=failed",
            "Jobs, client + kind + 24h": f"/jobs?client={CLIENTS[3]}&kind=video&range=24h",
            "Jobs, failed + error class (API)": "/api/jobs?state=failed&error_class=corrupt-media",
            "Job": f"/jobs/{job_id(42)}",
            "Health (last day's finished jobs)": "/health",
            "Dead letters (9 subscriptions)": "/dead-letters",
        }
        print(f"\n{'console request':40} {'p50 ms':>9} {'p95 ms':>9}   ({RUNS} requests each, {JOBS} jobs in the emulator)")
        with requests.Session() as s:
            for name, path in pages.items():
                times = []
                for _ in range(RUNS):
                    headers = {IAP_HEADER: assertion(pem, LOCAL_CONSOLE_AUDIENCE, "bench@example.com")}
                    t = time.perf_counter()
                    resp = s.get(base + path, headers=headers, timeout=300)
                    times.append((time.perf_counter() - t) * 1000)
                    resp.raise_for_status()
                times.sort()
                p95 = times[max(0, -(-len(times) * 95 // 100) - 1)]  # nearest rank
                print(f"{name:40} {statistics.median(times):9.0f} {p95:9.0f}", flush=True)


if __name__ == "__main__":
    main()
