"""Slow clients against the real ingest (nginx in front of gunicorn, services/common/front.py):
connections that trickle their headers or their body hold no request thread, and each is
bounded by its own deadline."""
from __future__ import annotations

import time
import uuid

import requests
from google.cloud import storage

from localcloud import chaos, samples
from tests.support.slow import connect, request_head, trickling


def test_trickled_headers_and_bodies_hold_no_request_thread(stack, http, ingest_url):
    """Before the front, 10 trickled headers made /healthz time out and 20 trickled bodies took
    every upload slot (503). The stack's ingest has 2 x 4 request threads: 30 + 20 slow
    connections are more than all of them, and the API still answers at once."""
    with trickling(ingest_url, stack, headers=30, bodies=20):
        time.sleep(1.5)  # every slow connection has started
        assert requests.get(f"{ingest_url}/healthz", timeout=5).status_code == 200
        raw = samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes
        resp = http.post(f"{ingest_url}/v1/uploads", data=raw, headers={"Content-Type": "image/jpeg"}, timeout=5)
        assert resp.status_code == 202, resp.text


def test_headers_not_whole_within_the_deadline_end_the_connection(stack):
    with chaos.extra_instance(stack, "ingest", {"FRONT_HEADER_TIMEOUT_SECONDS": "1"}) as url:
        sock = connect(url)
        try:
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 6 and not closed:
                try:
                    sock.send(b"G")  # never a whole header, though never silent either
                    sock.settimeout(0.3)
                    closed = sock.recv(4096) == b""
                except TimeoutError:
                    pass
                except OSError:
                    closed = True
            assert closed, "a connection trickling its header was kept past FRONT_HEADER_TIMEOUT_SECONDS"
            assert time.monotonic() - started < 4
        finally:
            sock.close()
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_body_that_pauses_past_the_deadline_ends_the_connection_and_stores_nothing(stack):
    """nginx answers a timed-out body by closing the connection (no status line: the client was
    not listening), and gunicorn never saw the request."""
    before = {b.name for b in storage.Client().list_blobs("mediarelay-originals", prefix="originals/")}
    with chaos.extra_instance(stack, "ingest", {"FRONT_BODY_TIMEOUT_SECONDS": "1"}) as url:
        sock = connect(url)
        try:
            sock.sendall(request_head(stack, 100_000) + b"\xff\xd8\xff")
            started = time.monotonic()
            sock.settimeout(10)
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                answer = b""
            waited = time.monotonic() - started
        finally:
            sock.close()
        assert answer == b"" and 0.9 < waited < 5, (answer[:200], waited)
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert {b.name for b in storage.Client().list_blobs("mediarelay-originals", prefix="originals/")} == before
