"""Webhook delivery in-process, against real receivers on 127.0.0.1: notify's real Flask app and
delivery code through test_client, with the in-memory job store, bus and endpoint store
(tests/fakes.py). What a receiver can do to us (trickle bytes, fail, refuse connections) and what
the client is told (the endpoint's `health`) are pinned down here; tests/test_webhooks.py shows the
same wiring against the emulators."""
from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.notify.app import create_app
from services.webhooks import ssrf
from services.webhooks.secretbox import SecretBox
from tests.support.fakes import SOURCE, MemoryEndpointStore, memory_runtime
from tests.support.pushes import envelope

LOCAL = frozenset({"127.0.0.1"})
KEY = base64.b64encode(os.urandom(32)).decode()


class Receiver:
    """An HTTP receiver on 127.0.0.1: `answers` are statuses (the last repeats) or "hang" (sleep
    `hang_s`, then 204). Records each request's path."""

    def __init__(self, answers=(204,), hang_s: float = 3.0):
        self.answers = list(answers)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = receiver.answers[min(len(receiver.requests), len(receiver.answers) - 1)]
                receiver.requests.append({"path": self.path, "at": time.monotonic()})
                if answer == "hang":
                    time.sleep(hang_s)
                    answer = 204
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Trickler:
    """A receiver that reads the request, then sends its answer one byte every `interval` s for
    up to `lasts` s: every single read gets a byte well within any per-read timeout. `body_only`
    sends the status line and headers at once and trickles the body instead."""

    def __init__(self, interval: float = 1.0, lasts: float = 40.0, body_only: bool = False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.interval, self.lasts, self.body_only = interval, lasts, body_only
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket):
        with conn:
            conn.recv(65536)
            ends = time.monotonic() + self.lasts
            try:
                if self.body_only:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while time.monotonic() < ends:
                    conn.sendall(b"a")
                    time.sleep(self.interval)
            except OSError:  # the sender gave up: what we want
                return

    def close(self):
        self.listener.close()


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class Notify:
    """notify's real app over in-memory stores; `deliver` pushes one webhook-delivery message."""

    def __init__(self, **settings):
        settings = {"webhook_allow_hosts": LOCAL, "webhook_secrets_key": KEY, "webhook_timeout_seconds": 2.0, **settings}
        self.rt = memory_runtime(**settings)
        self.endpoints = MemoryEndpointStore(SecretBox(KEY))
        self.client = create_app(runtime=self.rt, endpoints=self.endpoints).test_client()
        self.jobs = 0

    def endpoint(self, client: str, url: str) -> str:
        return self.endpoints.create(client, url, ["completed"])[0]["id"]

    def deliver(self, endpoint_id: str, attempt: int | None = None):
        client = self.endpoints.get(endpoint_id)["client_id"]
        self.jobs += 1
        job_id = f"job-{client}-{self.jobs:04d}"
        self.rt.jobs.create(job_id, {"kind": "image", "source": SOURCE, "owner": client})
        event = {"id": f"{job_id}/completed", "type": "completed", "job_id": job_id, "status": "completed"}
        payload = {"endpoint_id": endpoint_id, "job_id": job_id, "event": event}
        return self.client.post("/push/webhooks", json=envelope(payload, "webhook-delivery.v1", delivery_attempt=attempt))

    def health(self, endpoint_id: str) -> dict:
        return self.endpoints.get(endpoint_id).get("health") or {}


def _no_traceback(caplog):
    """No 'unexpected error' and no traceback was logged: a receiver's failure is not our bug."""
    bad = [r for r in caplog.records if r.exc_info or "unexpected" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


# --- break 1: an attempt is bounded as a whole ------------------------------------------------

def test_a_receiver_trickling_its_headers_is_cut_off_at_the_timeout():
    trickler = Trickler(interval=1.0)
    try:
        target = ssrf.check(trickler.url, LOCAL)
        started = time.monotonic()
        with pytest.raises(Exception) as failed:
            ssrf.post(target, b"{}", {}, timeout=2.0)
        elapsed = time.monotonic() - started
        print(f"trickling receiver: attempt ended after {elapsed:.2f} s (timeout 2 s)")
        assert elapsed < 2.0 + 0.5
        assert "WEBHOOK_TIMEOUT_SECONDS" in str(failed.value)
    finally:
        trickler.close()


def test_a_status_that_arrived_in_time_stands_even_if_the_body_trickles():
    trickler = Trickler(interval=1.0, body_only=True)
    try:
        started = time.monotonic()
        answer = ssrf.post(ssrf.check(trickler.url, LOCAL), b"{}", {}, timeout=2.0)
        assert answer.status == 200 and time.monotonic() - started < 2.0 + 0.5
    finally:
        trickler.close()


def test_a_tls_receiver_that_never_finishes_its_handshake_is_cut_off_at_the_timeout():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never speaks TLS
    try:
        target = ssrf.Target("https", "hooks.example", listener.getsockname()[1], "/", "127.0.0.1", "https://hooks.example/")
        started = time.monotonic()
        with pytest.raises(ssrf.Failed, match="WEBHOOK_TIMEOUT_SECONDS"):
            ssrf.post(target, b"{}", {}, timeout=1.0)
        assert time.monotonic() - started < 1.0 + 0.5
    finally:
        listener.close()


# --- break 2: whatever a delivery meets is told to the client, never a traceback -----------

def test_a_url_with_a_space_or_non_ascii_path_is_delivered_percent_encoded(caplog):
    """An endpoint stored before URLs were normalised at registration still works."""
    receiver = Receiver([204])
    n = Notify()
    try:
        endpoint_id = n.endpoint("client-a", receiver.url.replace("/hook", "/a b/é?q=ü x"))
        with caplog.at_level(logging.INFO):
            answer = n.deliver(endpoint_id)
        assert answer.status_code == 204, answer.get_json()
        assert [r["path"] for r in receiver.requests] == ["/a%20b/%C3%A9?q=%C3%BC%20x"]
        assert n.health(endpoint_id)["state"] == "ok"
        _no_traceback(caplog)
    finally:
        receiver.close()


def test_every_failure_is_recorded_on_the_endpoint_health_without_a_traceback(caplog):
    n = Notify(webhook_timeout_seconds=1.0)
    endpoint_id = n.endpoint("client-a", _closed_port_url())
    with caplog.at_level(logging.INFO):
        for count in (1, 2):
            answer = n.deliver(endpoint_id)
            assert answer.status_code == 503
            health = n.health(endpoint_id)
            assert health["consecutive_failures"] == count
            assert "connection refused" in health["last_error"] and health["last_error_at"]
    _no_traceback(caplog)
    trickler = Trickler(interval=0.25)
    try:
        slow = n.endpoint("client-a", trickler.url)
        assert n.deliver(slow).status_code == 503
        assert "WEBHOOK_TIMEOUT_SECONDS" in n.health(slow)["last_error"]
    finally:
        trickler.close()


# --- the circuit breaker --------------------------------------------------------------------

def test_a_failing_endpoint_opens_its_breaker_then_one_trial_closes_it():
    receiver = Receiver([500])
    n = Notify(webhook_breaker_threshold=2, webhook_breaker_open_seconds=1.0)
    try:
        endpoint_id = n.endpoint("client-a", receiver.url)
        assert [n.deliver(endpoint_id).status_code for _ in range(2)] == [503, 503]
        assert len(receiver.requests) == 2 and n.health(endpoint_id)["state"] == "circuit-open"
        started = time.monotonic()
        paused = n.deliver(endpoint_id)  # open: answered at once, no network attempt
        assert paused.status_code == 503 and time.monotonic() - started < 0.5
        assert "WEBHOOK_BREAKER_THRESHOLD" in paused.get_json()["detail"] and len(receiver.requests) == 2
        time.sleep(1.1)  # half-open: the next delivery is the trial
        assert n.deliver(endpoint_id).status_code == 503 and len(receiver.requests) == 3  # the trial failed
        assert n.deliver(endpoint_id).status_code == 503 and len(receiver.requests) == 3  # open again at once
        receiver.answers = [204]
        time.sleep(1.1)
        assert n.deliver(endpoint_id).status_code == 204 and len(receiver.requests) == 4  # the trial succeeded
        health = n.health(endpoint_id)
        assert health["state"] == "ok" and health["consecutive_failures"] == 0 and "HTTP 500" in health["last_error"]
        assert "breaker" not in n.endpoints.get(endpoint_id)
        assert n.deliver(endpoint_id).status_code == 204 and len(receiver.requests) == 5  # closed
    finally:
        receiver.close()


def test_while_half_open_only_one_delivery_makes_the_trial():
    receiver = Receiver(["hang"], hang_s=1.0)
    n = Notify(webhook_breaker_threshold=1, webhook_breaker_open_seconds=0.2)
    try:
        endpoint_id = n.endpoint("client-a", _closed_port_url())
        assert n.deliver(endpoint_id).status_code == 503  # opens
        n.endpoints.update(endpoint_id, {"url": receiver.url})  # the client fixed its receiver
        time.sleep(0.3)
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(n.deliver(endpoint_id).status_code)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [204, 503] and len(receiver.requests) == 1
    finally:
        receiver.close()


def test_the_last_attempt_while_open_marks_the_endpoint_unhealthy():
    n = Notify(webhook_breaker_threshold=1, webhook_breaker_open_seconds=60.0)
    endpoint_id = n.endpoint("client-a", _closed_port_url())
    assert n.deliver(endpoint_id).status_code == 503
    assert n.deliver(endpoint_id, attempt=10).status_code == 503
    health = n.health(endpoint_id)
    assert health["state"] == "unhealthy" and "dead-lettered after 10 attempts" in health["reason"]


# --- capacity shared between clients ----------------------------------------------------------

def test_a_client_over_its_share_is_told_to_retry_while_another_client_is_served():
    """Break 1's other half: one client's slow endpoints held every delivery thread."""
    slow, fast = Receiver(["hang"], hang_s=1.5), Receiver([204])
    n = Notify(webhook_client_concurrency=1)
    try:
        held = n.endpoint("client-slow", slow.url)
        other = n.endpoint("client-slow", fast.url)
        served = n.endpoint("client-fast", fast.url)
        first = threading.Thread(target=n.deliver, args=(held,))
        first.start()
        while not slow.requests:
            time.sleep(0.01)
        started = time.monotonic()
        over = n.deliver(other)
        assert over.status_code == 503 and "WEBHOOK_CLIENT_CONCURRENCY" in over.get_json()["detail"]
        assert n.deliver(served).status_code == 204
        assert time.monotonic() - started < 0.5 and len(fast.requests) == 1
        assert n.deliver(other, attempt=10).status_code == 204  # the last attempt is never refused for capacity
        first.join()
        assert n.health(other).get("consecutive_failures", 0) == 0  # capacity is not the endpoint's failure
    finally:
        slow.close()
        fast.close()
