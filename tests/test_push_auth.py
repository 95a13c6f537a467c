"""Push authentication: OIDC tokens checked when an audience is configured.

A second analyze instance runs under gunicorn with PUSH_AUDIENCE set; tokens are signed by a
test RSA key whose JWKS this test serves on 127.0.0.1, as Google serves its own.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from localcloud import chaos
from localcloud.taps import TopicTap
from services.common.status import JobStore

AUDIENCE = "mediarelay-push-test"
PUSH_SA = "push@mediarelay-test.iam.gserviceaccount.com"
KID = "test-key-1"


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key, kid: str) -> dict:
    nums = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(nums.n), "e": b64(nums.e)}


def _token(key, kid=KID, **overrides) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSH_SA, "email_verified": True,
              "sub": "1234567890", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return jwt.encode(crypt.RSASigner.from_string(pem, key_id=kid), claims).decode()


@pytest.fixture(scope="module")
def signing_key():
    return _new_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key):
    body = json.dumps({"keys": [_jwk(signing_key, KID)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/certs"
    server.shutdown()


@pytest.fixture(scope="module")
def secured_analyze(stack, jwks_url):
    """analyze with verification on, beside the stack's own (which the emulator pushes to)."""
    env = {"PUSH_VERIFICATION": "on", "PUSH_AUDIENCE": AUDIENCE, "PUSH_SERVICE_ACCOUNT": PUSH_SA, "PUSH_CERTS_URL": jwks_url}
    with chaos.extra_instance(stack, "analyze", env) as url:
        yield url + "/push"


@pytest.fixture(scope="module")
def analyzed_tap(stack):
    tap = TopicTap(stack.project, "media-analyzed")
    yield tap
    tap.close()


@pytest.mark.parametrize(
    "case, expected",
    [("missing", 401), ("forged", 401), ("expired", 401), ("wrong-audience", 401),
     ("wrong-issuer", 401), ("wrong-account", 403), ("unverified-email", 403), ("not-a-jwt", 401)],
)
def test_bad_push_tokens_are_refused_and_nothing_happens(http, stack, secured_analyze, analyzed_tap, signing_key,
                                                         case, expected):
    payload = chaos.seed_job(stack)
    tokens = {
        "missing": None,
        "forged": _token(_new_key()),  # same kid, another key
        "expired": _token(signing_key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "wrong-audience": _token(signing_key, aud="https://someone-else.example"),
        "wrong-issuer": _token(signing_key, iss="https://evil.example"),
        "wrong-account": _token(signing_key, email="intruder@evil.iam.gserviceaccount.com"),
        "unverified-email": _token(signing_key, email_verified=False),
        "not-a-jwt": "definitely-not-a-token",
    }
    headers = {"Authorization": f"Bearer {tokens[case]}"} if tokens[case] else {}
    resp = http.post(secured_analyze, json=chaos.envelope(payload, "media-ingested.v1"), headers=headers, timeout=30)
    assert resp.status_code == expected, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    time.sleep(0.5)
    analyzed_tap.drain()
    assert analyzed_tap.for_job(payload["job_id"]) == []
    job = JobStore(stack.project).get(payload["job_id"])
    assert job["stages"]["analyze"]["attempts"] == 0 and job["status"] == "received"


def test_valid_push_token_is_accepted_and_work_is_published(http, stack, secured_analyze, analyzed_tap, signing_key):
    payload = chaos.seed_job(stack)
    resp = http.post(secured_analyze, json=chaos.envelope(payload, "media-ingested.v1"),
                     headers={"Authorization": f"Bearer {_token(signing_key)}"}, timeout=30)
    assert resp.status_code == 204, resp.text
    deadline = time.monotonic() + 20
    while not analyzed_tap.for_job(payload["job_id"]) and time.monotonic() < deadline:
        analyzed_tap.drain()
        time.sleep(0.2)
    [(attrs, data)] = analyzed_tap.for_job(payload["job_id"])
    assert attrs["schema"].startswith("media-analyzed.") and data["analysis"]["width"] == 320


def test_sweep_endpoint_admits_only_the_scheduler_account(http, stack, jwks_url, signing_key):
    scheduler = "scheduler@mediarelay-test.iam.gserviceaccount.com"
    env = {"PUSH_VERIFICATION": "on", "PUSH_AUDIENCE": AUDIENCE, "PUSH_SERVICE_ACCOUNT": PUSH_SA, "PUSH_CERTS_URL": jwks_url,
           "SCHEDULER_SERVICE_ACCOUNT": scheduler}
    with chaos.extra_instance(stack, "notify", env) as url:
        sweep = f"{url}/ops/sweep?dry_run=true"
        assert http.post(sweep, timeout=30).status_code == 401
        assert http.post(sweep, headers={"Authorization": f"Bearer {_token(signing_key)}"}, timeout=30).status_code == 403
        ok = http.post(sweep, headers={"Authorization": f"Bearer {_token(signing_key, email=scheduler)}"}, timeout=60)
        assert ok.status_code == 200 and ok.json()["dry_run"] is True
