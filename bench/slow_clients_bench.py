"""Slow clients against ingest (nginx in front of gunicorn, services/common/front.py): /healthz
and a normal upload, timed while 50 connections trickle their headers and 20 their bodies for
SLOW_SECONDS (60), beside the same requests on the same stack with nobody trickling.

Goal (issue 21): during the attack /healthz within 1 s and an upload within 2 s. Reported as
p50/p95/max and as ratios to the quiet baseline of the same run.
"""
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

from localcloud import chaos
from localcloud.stack import private_stack
from services.client import auth_headers
from tests.support.slow import trickling

SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "60"))
HEADERS, BODIES = 50, 20


def _timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def _sample(cfg, seconds: float) -> tuple[list[float], list[float]]:
    health, upload = [], []
    ingest = cfg.url("ingest")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health.append(_timed(lambda: requests.get(f"{ingest}/healthz", timeout=30).raise_for_status()))
        body = chaos.small_jpeg(0) + uuid.uuid4().bytes

        def up(body=body):
            resp = requests.post(f"{ingest}/v1/uploads", data=body, timeout=30,
                                 headers={"Content-Type": "image/jpeg", **auth_headers(cfg.api_key)})
            assert resp.status_code == 202, resp.text

        upload.append(_timed(up))
        time.sleep(0.5)
    return health, upload


def _row(name: str, xs: list[float], base: list[float]) -> str:
    q = statistics.quantiles(xs, n=20) if len(xs) > 1 else xs * 19
    return (f"  {name:<22} p50 {statistics.median(xs) * 1000:7.1f} ms  p95 {q[18] * 1000:7.1f} ms  max {max(xs) * 1000:7.1f} ms"
            f"   p50 x{statistics.median(xs) / statistics.median(base):.1f} of quiet")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the local cloud it started
    env = {"QUOTA_UPLOADS_PER_DAY": "100000", "CLIENT_RATE_PER_SECOND": "1000", "CLIENT_RATE_BURST": "1000"}
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-slow", env) as cfg:
        _sample(cfg, 3)  # warm-up
        quiet_h, quiet_u = _sample(cfg, min(SLOW_SECONDS, 20))
        with trickling(cfg.url("ingest"), cfg, headers=HEADERS, bodies=BODIES, every_s=1.0) as counts:
            time.sleep(2)  # every slow connection is open
            slow_h, slow_u = _sample(cfg, SLOW_SECONDS)
    print(f"ingest behind nginx, {HEADERS} trickled headers + {BODIES} trickled bodies for {SLOW_SECONDS:g} s, "
          f"(kept open: {counts['reopened']} closed by nginx's deadlines and opened again), load {os.getloadavg()[0]:.1f}")
    print(_row("/healthz, quiet", quiet_h, quiet_h))
    print(_row("/healthz, under attack", slow_h, quiet_h))
    print(_row("upload, quiet", quiet_u, quiet_u))
    print(_row("upload, under attack", slow_u, quiet_u))
    print(f"  goal: /healthz max <= 1000 ms: {'met' if max(slow_h) <= 1 else 'MISSED'}; "
          f"upload max <= 2000 ms: {'met' if max(slow_u) <= 2 else 'MISSED'}")
