"""Webhooks end to end: a job's final event reaches its client's endpoints on 127.0.0.1,
signed per Standard Webhooks and verified here with the `standardwebhooks` package (an
independent implementation), retried and dead-lettered by Pub/Sub like the stages."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from localcloud.stack import local_webhook_key
from localcloud.taps import TopicTap
from services.pipeline.jobstore import JobStore
from services.webhooks.endpoints import EndpointStore
from services.webhooks.secretbox import SecretBox
from tests.support.pushes import envelope, seed_job


class Receiver:
    """An HTTP receiver on 127.0.0.1 whose answers the test scripts: a list of statuses
    (the last repeats), or "hang" to sleep past the sender's timeout."""

    def __init__(self, answers=(204,), host="127.0.0.1"):
        self.answers = list(answers)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != receiver.path:  # an earlier test's endpoint on a reused port: not ours
                    self.send_response(410)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                n = len(receiver.requests)
                answer = receiver.answers[min(n, len(receiver.answers) - 1)]
                receiver.requests.append({"at": time.time(), "headers": dict(self.headers), "body": body,
                                          "answer": answer})
                if answer == "hang":
                    time.sleep(8)
                    answer = 204
                self.send_response(answer if isinstance(answer, int) else answer[0])
                if isinstance(answer, tuple):  # (302, location)
                    self.send_header("Location", answer[1])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        # A path of its own: Pub/Sub may still retry an earlier test's delivery to a port the OS
        # has since given to this receiver; such a request is answered 410 and not counted.
        self.path = f"/hook-{uuid.uuid4().hex[:12]}"
        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server.server_port}{self.path}"

    def wait_for(self, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.requests

    def close(self):
        self.server.shutdown()


class Trickler:
    """A receiver that answers one header byte per second, for a minute: every single read gets
    a byte long before any per-read timeout. Records when each connection came and went."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.path = f"/hook-{uuid.uuid4().hex[:12]}"  # as Receiver's: a stale retry to a reused port is not ours
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}{self.path}"
        self.connections: list[dict] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            record = {"accepted": time.monotonic(), "closed": None}
            threading.Thread(target=self._trickle, args=(conn, record, self.path, self.connections), daemon=True).start()

    @staticmethod
    def _trickle(conn, record, path, connections):
        with conn:
            request = conn.recv(65536)
            if not request.startswith(f"POST {path} ".encode()):
                conn.sendall(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n")
                return
            connections.append(record)
            conn.settimeout(1.0)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(60):
                    conn.sendall(b"a")
                    try:
                        if conn.recv(1) == b"":  # the sender hung up
                            break
                    except TimeoutError:
                        continue
            except OSError:
                pass
            record["closed"] = time.monotonic()

    def close(self):
        self.listener.close()


@pytest.fixture
def endpoints(stack):
    """The endpoint store; the endpoints a test makes are removed after it. A receiver that is
    gone would otherwise see its deliveries fail until their last attempt, and Pub/Sub paces the
    whole delivery subscription by its success rate: a later test's retries came minutes late."""
    store = EndpointStore(stack.project, SecretBox(local_webhook_key(stack.state_dir)))
    made: list[str] = []
    create = store.create

    def create_tracked(client_id: str, url: str, events: list[str]):
        doc, secret = create(client_id, url, events)
        made.append(doc["id"])
        return doc, secret

    store.create = create_tracked  # type: ignore[method-assign]
    yield store
    for endpoint_id in made:
        store.delete(endpoint_id)


def _job_for(http, stack, client_id: str) -> str:
    """A job of `client_id`, sent through the chain (analyze is pushed its first message)."""
    payload = seed_job(stack, owner=client_id)
    assert http.post(f"{stack.url('analyze')}/push", json=envelope(payload, "media-ingested.v1"),
                     timeout=60).status_code == 204
    return payload["job_id"]


def _verify(secret: str, request: dict):
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return Webhook(secret).verify(request["body"], headers)


def test_a_final_event_is_delivered_signed_once_after_the_receiver_recovers(http, stack, endpoints, events):
    receiver = Receiver([503, 503, 204])
    try:
        client = "client-retry"
        doc, secret = endpoints.create(client, receiver.url, ["completed", "failed"])
        job_id = _job_for(http, stack, client)
        [event] = events.wait_for_jobs([job_id])[job_id]
        reqs = receiver.wait_for(3, timeout=180)  # two backoffs; on a loaded machine each attempt is slow too
        assert [r["answer"] for r in reqs] == [503, 503, 204]
        for r in reqs:
            assert _verify(secret, r) == event  # the signed body is exactly the media-events event
        assert {r["headers"]["webhook-id"] for r in reqs} == {event["id"]}  # stable across retries
        store = JobStore(stack.project)
        deadline = time.monotonic() + 20
        while not (store.get(job_id).get("webhooks") or {}).get(doc["id"], {}).get("delivered_at"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        record = store.get(job_id)["webhooks"][doc["id"]]
        assert record["attempts"] == 3 and record["last_status"] == 204 and record["latency_ms"] >= 0
        gaps = [round(b["at"] - a["at"], 1) for a, b in zip(reqs, reqs[1:], strict=False)]
        print(f"retry schedule observed (s between attempts): {gaps}")
        assert len(receiver.requests) == 3  # recorded delivered: no attempt after the 2xx (positive signal above)
    finally:
        receiver.close()


def test_a_slow_endpoint_does_not_delay_another_and_rotation_signs_with_both_secrets(http, stack, endpoints, events):
    slow, fast = Receiver(["hang", 204]), Receiver([204])
    try:
        client = "client-two"
        endpoints.create(client, slow.url, ["completed"])
        fast_doc, old_secret = endpoints.create(client, fast.url, ["completed"])
        job_id = _job_for(http, stack, client)
        [got] = fast.wait_for(1)
        slow.wait_for(1)
        # The fast endpoint had its event while the slow one was still hanging on its first attempt.
        assert got["at"] < slow.requests[0]["at"] + 5
        assert _verify(old_secret, got)["job_id"] == job_id

        import datetime as dt

        new_secret = endpoints.rotate(fast_doc["id"], dt.timedelta(hours=1))
        second = _job_for(http, stack, client)
        reqs = fast.wait_for(2)
        assert len(reqs[1]["headers"]["webhook-signature"].split(" ")) == 2
        assert _verify(old_secret, reqs[1])["job_id"] == second == _verify(new_secret, reqs[1])["job_id"]
    finally:
        slow.close()
        fast.close()


def test_a_trickling_receiver_is_cut_off_at_the_timeout_and_told_on_its_health(http, stack, endpoints):
    """Issue 21: WEBHOOK_TIMEOUT_SECONDS (5 here) bounds the whole attempt, not each read; the
    failure is on the endpoint's health for its client to see."""
    trickler = Trickler()
    try:
        doc, _ = endpoints.create("client-trickle", trickler.url, ["completed"])
        _job_for(http, stack, "client-trickle")
        deadline = time.monotonic() + 60
        while not (trickler.connections and trickler.connections[0]["closed"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        first = trickler.connections[0]
        held = first["closed"] - first["accepted"]
        print(f"trickling receiver held for {held:.1f} s (WEBHOOK_TIMEOUT_SECONDS=5)")
        assert held < 5 + 1.5
        while not (endpoints.get(doc["id"]).get("health") or {}).get("last_error") and time.monotonic() < deadline:
            time.sleep(0.2)
        health = endpoints.get(doc["id"])["health"]
        assert "WEBHOOK_TIMEOUT_SECONDS=5" in health["last_error"] and health["consecutive_failures"] >= 1
    finally:
        trickler.close()


def test_ssrf_targets_and_redirects_are_refused_and_gone_endpoints_disabled(http, stack, endpoints):
    inside = Receiver([204], host="127.0.0.2")  # loopback but not allow-listed: must never be called
    redirecting = Receiver([(302, inside.url), 204])
    gone = Receiver([410])
    dlq = TopicTap(stack.project, "notify-webhook-deliveries-dlq")
    try:
        client = "client-ssrf"
        metadata, _ = endpoints.create(client, "https://169.254.169.254/computeMetadata/v1/", ["completed"])
        ipv6, _ = endpoints.create(client, "https://[::1]/hook", ["completed"])
        endpoints.create(client, redirecting.url, ["completed"])
        gone_doc, _ = endpoints.create(client, gone.url, ["completed"])
        job_id = _job_for(http, stack, client)
        dead = []
        deadline = time.monotonic() + 60
        while len(dead) < 2 and time.monotonic() < deadline:
            dlq.drain()
            dead = dlq.for_job(job_id)
            time.sleep(0.2)
        assert sorted(d["endpoint_id"] for _, d in dead) == sorted([metadata["id"], ipv6["id"]])
        assert all(a["error_class"] == "permanent" and "address" in a["error_reason"] for a, _ in dead)
        assert "link-local" in endpoints.get(metadata["id"])["health"]["reason"]
        assert "loopback" in endpoints.get(ipv6["id"])["health"]["reason"]
        redirecting.wait_for(2)  # a redirect is a failed attempt, retried, never followed
        assert inside.requests == []
        gone.wait_for(1)
        deadline = time.monotonic() + 20
        while not endpoints.get(gone_doc["id"]).get("disabled") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "410" in endpoints.get(gone_doc["id"])["disabled"]["reason"]
    finally:
        dlq.close()
        for r in (inside, redirecting, gone):
            r.close()


def test_a_dead_lettered_delivery_is_replayed_once_the_receiver_is_fixed(http, stack, endpoints, events):
    """What Pub/Sub does on the last attempt (deliveryAttempt = max): the endpoint is marked
    unhealthy, the message goes to the dead letters; `dlq replay` delivers it once."""
    receiver = Receiver([500])
    try:
        client = "client-dlq"
        doc, secret = endpoints.create(client, receiver.url, ["failed"])  # this job completes: no real delivery
        job_id = _job_for(http, stack, client)
        [event] = events.wait_for_jobs([job_id])[job_id]
        delivery = {"endpoint_id": doc["id"], "job_id": job_id, "event": event}
        last = http.post(f"{stack.url('notify')}/push/webhooks",
                         json=envelope(delivery, "webhook-delivery.v1", delivery_attempt=10), timeout=30)
        assert last.status_code == 503
        assert endpoints.get(doc["id"])["health"]["state"] == "unhealthy"
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        publisher.publish(publisher.topic_path(stack.project, "notify-webhook-deliveries-dlq"),
                          json.dumps(delivery).encode(), job_id=job_id, schema="webhook-delivery.v1",
                          CloudPubSubDeadLetterSourceDeliveryCount="10",
                          CloudPubSubDeadLetterSourceSubscription="notify-webhook-deliveries").result(timeout=30)
        receiver.answers = [204]  # fixed
        env = {**os.environ, **stack.client_env()}
        replay = subprocess.run([sys.executable, "-m", "services.cli", "dlq", "replay", "--job", job_id],
                                capture_output=True, text=True, timeout=60, env=env)
        assert replay.returncode == 0 and "1 replayed" in replay.stdout, replay.stdout + replay.stderr
        reqs = receiver.wait_for(2)
        assert [r["answer"] for r in reqs] == [500, 204]
        assert _verify(secret, reqs[1]) == event
        assert JobStore(stack.project).get(job_id)["status"] == "completed"
    finally:
        receiver.close()


def test_clients_manage_their_own_endpoints_and_see_a_secret_once(stack, new_client, ingest_url):
    """/v1/webhooks through real HTTP, and the CLI over it. Registration sends no traffic: the
    public address below is only checked, never called."""
    _, a, key_a = new_client("webhooks-a")
    _, b, _ = new_client("webhooks-b")
    url = "https://93.184.216.34/hook"
    made = a.post(f"{ingest_url}/v1/webhooks", json={"url": url, "events": ["failed"]}, timeout=10)
    assert made.status_code == 201, made.text
    first = made.json()
    assert first["secret"].startswith("whsec_") and first["events"] == ["failed"]
    [listed] = a.get(f"{ingest_url}/v1/webhooks", timeout=10).json()["webhooks"]
    assert listed["id"] == first["id"] and "secret" not in listed and "sealed" not in str(listed)
    for bad, words in ((url.replace("https", "http"), "https"), ("https://169.254.169.254/", "link-local"),
                       ("https://[::1]/x", "loopback")):
        refused = a.post(f"{ingest_url}/v1/webhooks", json={"url": bad}, timeout=10)
        assert refused.status_code == 422 and words in refused.json()["detail"], refused.text
    assert a.post(f"{ingest_url}/v1/webhooks", json={"url": url, "events": ["sometimes"]}, timeout=10).status_code == 422

    # Another client neither sees nor touches it.
    assert b.get(f"{ingest_url}/v1/webhooks", timeout=10).json()["webhooks"] == []
    assert b.post(f"{ingest_url}/v1/webhooks/{first['id']}/rotate", timeout=10).status_code == 404
    assert b.delete(f"{ingest_url}/v1/webhooks/{first['id']}", timeout=10).status_code == 404

    rotated = a.post(f"{ingest_url}/v1/webhooks/{first['id']}/rotate", timeout=10).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != first["secret"]
    old, new = sorted(rotated["secrets"], key=lambda s: s["created_at"])
    assert old["expires_at"] and not new.get("expires_at")  # the old one signs on for the overlap

    env = {**os.environ, "MEDIARELAY_API_KEY": key_a, "MEDIARELAY_URL": ingest_url}
    cli = [sys.executable, "-m", "services.cli", "webhooks"]
    added = subprocess.run([*cli, "add", "https://93.184.216.34/other", "--json"], capture_output=True, text=True,
                           timeout=60, env=env)
    assert added.returncode == 0 and json.loads(added.stdout)["secret"].startswith("whsec_"), added.stderr
    table = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=60, env=env).stdout
    assert first["id"] in table and "/other" in table and "whsec_" not in table
    gone = subprocess.run([*cli, "remove", first["id"]], capture_output=True, text=True, timeout=60, env=env)
    assert gone.returncode == 0
    assert [w["url"] for w in a.get(f"{ingest_url}/v1/webhooks", timeout=10).json()["webhooks"]] == [
        "https://93.184.216.34/other"]
    for n in (2, 3):  # the stack allows WEBHOOK_MAX_ENDPOINTS=3 per client
        assert a.post(f"{ingest_url}/v1/webhooks", json={"url": f"{url}/{n}"}, timeout=10).status_code == 201
    full = a.post(f"{ingest_url}/v1/webhooks", json={"url": f"{url}/4"}, timeout=10)
    assert full.status_code == 409 and "WEBHOOK_MAX_ENDPOINTS" in full.json()["detail"]
