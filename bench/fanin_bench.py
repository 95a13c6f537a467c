"""Fan-in under a burst: SEGMENTS segment deliveries of one job finishing within one second,
against the local Firestore emulator (nothing else of the local cloud: bus and blobs are the
in-memory ones of the unit tests, so only the job store is measured).

Each delivery is the real `handon.segment_delivery` with work that returns at once, so what is
measured is the bookkeeping: how many deliveries had to re-read and retry a write because the
job document changed under them (compare-and-set conflicts), how many gave up (a 503, so
Pub/Sub would redeliver them), how many writes hit the one job document, and how many
deliveries fanned in (goal: exactly one). Deliveries that gave up are redelivered afterwards,
as Pub/Sub would, until the job has handed off.

    PYTHONPATH=. python -m bench fanin          # FANIN_SEGMENTS=300 FANIN_WINDOW_S=1.0
"""
from __future__ import annotations

import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from localcloud.stack import lone_emulator
from services.common.errors import TransientError
from services.pipeline import handon
from services.pipeline.handon import FanOut, StageResult, segment_messages
from services.pipeline.jobstore import Conflict, JobStore
from tests.support.fakes import memory_runtime

SEGMENTS = int(os.environ.get("FANIN_SEGMENTS", "300"))
WINDOW_S = float(os.environ.get("FANIN_WINDOW_S", "1.0"))
PROJECT = "mediarelay-fanin-bench"
SOURCE = {"uri": "gs://mediarelay-originals/originals/v", "bucket": "mediarelay-originals", "name": "originals/v",
          "generation": "1", "content_type": "video/mp4", "size": 10}


class CountingJobStore(JobStore):
    """The Firestore job store, counting what happens to the job document."""

    def __init__(self, project: str):
        super().__init__(project)
        self.lock = threading.Lock()
        self.conflicts: dict[int, int] = {}  # segment index -> compare-and-set conflicts it met
        self.job_writes = 0
        self.local = threading.local()

    def _write_if(self, job_id, updates, version):
        try:
            super()._write_if(job_id, updates, version)
        except Conflict:
            with self.lock:
                index = getattr(self.local, "index", -1)
                self.conflicts[index] = self.conflicts.get(index, 0) + 1
            raise
        with self.lock:
            self.job_writes += 1

    def _write(self, job_id, updates):
        super()._write(job_id, updates)
        with self.lock:
            self.job_writes += 1


def _burst(rt, jobs: CountingJobStore, job_id: str, messages: list[dict], merge) -> dict:
    spans = []
    failed: list[dict] = []
    barrier = threading.Barrier(len(messages))
    lock = threading.Lock()

    def deliver(msg):
        jobs.local.index = msg["index"]
        barrier.wait()
        time.sleep(random.uniform(0.0, WINDOW_S))
        t0 = time.monotonic()
        try:
            handon.segment_delivery(rt, "analyze", lambda rt, job, seg: {"index": seg["index"]}, merge, msg)
        except TransientError:
            with lock:
                failed.append(msg)
        with lock:
            spans.append((t0, time.monotonic()))

    threads = [threading.Thread(target=deliver, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return {"failed": failed, "wall_s": last - first, "slowest_s": max(e - s for s, e in spans)}


def run(rt, jobs: CountingJobStore) -> dict:
    job_id = f"job-fanin-{int(time.time())}"
    jobs.create(job_id, {"kind": "video", "source": SOURCE})
    jobs.begin_stage(job_id, "analyze")
    merges = []

    def merge(rt, job, results):
        merges.append(len(results))
        payload = {"job_id": job_id, "kind": "video", "source": SOURCE, "analysis": {"format": "mp4", "width": 4, "height": 3}}
        return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": payload["analysis"]})

    spans = [{"start_s": float(i), "end_s": float(i + 1)} for i in range(SEGMENTS)]
    msg = {"job_id": job_id, "kind": "video", "source": SOURCE}
    messages = segment_messages(msg, "analyze", spans, [{}] * SEGMENTS)
    handon.fan_out(rt, "analyze", job_id, FanOut(messages, {"plan": {}}, merge))
    writes_before = jobs.job_writes
    burst = _burst(rt, jobs, job_id, messages, merge)
    redelivered, rounds, pending = 0, 0, burst["failed"]
    while pending and rounds < 20:  # Pub/Sub's redelivery of the deliveries that answered 503
        rounds += 1
        redelivered += len(pending)
        again = []
        for m in pending:
            try:
                handon.segment_delivery(rt, "analyze", lambda rt, job, seg: {"index": seg["index"]}, merge, m)
            except TransientError:
                again.append(m)
        pending = again
    job = jobs.get(job_id) or {}
    return {
        "burst_s": burst["wall_s"], "slowest_delivery_s": burst["slowest_s"],
        "with_conflicts": sum(1 for i, n in jobs.conflicts.items() if i >= 0 and n),
        "conflicts": sum(jobs.conflicts.values()), "gave_up": len(burst["failed"]), "redelivered": redelivered,
        "job_writes": jobs.job_writes - writes_before, "merges": len(merges),
        "hand_ons": len(rt.bus.on("media-analyzed", job_id)), "state": job["stages"]["analyze"]["state"],
    }


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the emulator it started
    with tempfile.TemporaryDirectory() as tmp, lone_emulator(Path(tmp), PROJECT, "firestore"):
        rt = memory_runtime(project=PROJECT)
        rt.jobs = jobs = CountingJobStore(PROJECT)
        row = run(rt, jobs)
    print(f"{SEGMENTS} segments finishing within {WINDOW_S:g} s (Firestore emulator, real segment_delivery)")
    print(f"  burst took {row['burst_s']:.2f} s, slowest delivery {row['slowest_delivery_s']:.2f} s")
    print(f"  deliveries that met a compare-and-set conflict: {row['with_conflicts']} ({row['conflicts']} conflicts)")
    print(f"  deliveries that gave up (503, redelivered by Pub/Sub): {row['gave_up']}; "
          f"redeliveries until handed off: {row['redelivered']}")
    print(f"  writes to the job document during the burst: {row['job_writes']}")
    print(f"  merges: {row['merges']}, hand-ons (next message published): {row['hand_ons']}, stage: {row['state']}")


if __name__ == "__main__":
    main()
