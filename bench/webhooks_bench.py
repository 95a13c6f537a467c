"""Webhook delivery latency: from a job's final event being published (notify's
`final_event.published_at`) to the client's receiver on 127.0.0.1 getting it, over the real
path (media-events push -> fan-out -> webhook-deliveries push -> signed POST). Reported beside
the event's own latency in the same run: media-events published -> a pull subscriber's copy."""
from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from localcloud.stack import local_webhook_key, private_stack
from localcloud.taps import TopicTap
from services.ingest.clients import client_id_of
from services.pipeline.jobstore import JobStore
from services.webhooks.endpoints import EndpointStore
from services.webhooks.secretbox import SecretBox
from tests.support.pushes import envelope, seed_job

RUNS = int(os.environ.get("WEBHOOK_BENCH_RUNS", "20"))


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the local cloud it started
    received: dict[str, float] = {}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.setdefault(self.headers["webhook-id"], time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-webhooks") as cfg:
        owner = client_id_of(cfg.api_key)
        store = EndpointStore(cfg.project, SecretBox(local_webhook_key(cfg.state_dir)))
        store.create(owner, f"http://127.0.0.1:{server.server_port}/hook", ["completed", "failed"])
        events, jobs = TopicTap(cfg.project, "media-events"), JobStore(cfg.project)
        hook, pulled = [], []
        try:
            for _ in range(RUNS):
                payload = seed_job(cfg)
                requests.post(f"{cfg.url('analyze')}/push", json=envelope(payload, "media-ingested.v1"), timeout=60)
                job_id = payload["job_id"]
                deadline = time.monotonic() + 60
                while f"{job_id}/completed" not in received and time.monotonic() < deadline:
                    time.sleep(0.005)
                while not events.for_job(job_id) and time.monotonic() < deadline:
                    events.drain()
                pulled_at = time.time()
                published = jobs.get(job_id)["final_event"]["published_at"].timestamp()
                hook.append(received[f"{job_id}/completed"] - published)
                pulled.append(pulled_at - published)
        finally:
            events.close()
            server.shutdown()
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"  # noqa: E731
    print(f"final event published -> delivered, {RUNS} jobs, load {os.getloadavg()[0]:.1f}")
    print(f"  webhook received by the client's endpoint: {ms(hook)}")
    print(f"  event pulled from media-events (baseline): {ms(pulled)}")
    print(f"  ratio webhook / pull: {statistics.median(hook) / statistics.median(pulled):.2f}x")
