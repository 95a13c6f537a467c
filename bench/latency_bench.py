"""Upload-to-event latency: one 12 MP JPEG through the whole chain, 10 times, on a local
cloud of its own. Reported beside the same measurement for a small (320x240) JPEG in the
same run, so the pipeline's fixed cost and the 12 MP work can be told apart."""
from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from localcloud import chaos, samples
from localcloud.stack import StackConfig, private_stack
from localcloud.taps import TopicTap
from services.client import auth_headers

RUNS = int(os.environ.get("LATENCY_RUNS", "10"))


def _one(cfg: StackConfig, events: TopicTap, data: bytes) -> float:
    started = time.monotonic()
    resp = requests.post(f"{cfg.url('ingest')}/v1/uploads", data=data,
                         headers={"Content-Type": "image/jpeg", **auth_headers(cfg.api_key)}, timeout=60)
    job_id = resp.json()["job_id"]
    while not events.for_job(job_id):
        events.drain()
        time.sleep(0.01)
    [(_, event)] = events.for_job(job_id)
    assert event["status"] == "completed", event
    return time.monotonic() - started


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the local cloud it started
    big = samples.large_jpeg()  # 4000 x 3000
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-latency") as cfg:
        events = TopicTap(cfg.project, "media-events")
        try:
            _one(cfg, events, chaos.small_jpeg(0))  # warm-up: first requests import and connect
            small = [_one(cfg, events, chaos.small_jpeg(i + 1)) for i in range(RUNS)]
            large = [_one(cfg, events, big + uuid.uuid4().bytes) for _ in range(RUNS)]
        finally:
            events.close()
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"  # noqa: E731
    print(f"upload -> media-events, {RUNS} runs each, load {os.getloadavg()[0]:.1f}")
    print(f"  320x240 JPEG:  {ms(small)}")
    print(f"  12 MP JPEG:    {ms(large)}  = {statistics.median(large) / statistics.median(small):.1f}x the small one")
