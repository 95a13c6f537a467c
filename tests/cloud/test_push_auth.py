"""Push authentication end to end: a second analyze under gunicorn with PUSH_VERIFICATION=on
(beside the stack's own, which the emulator pushes to) verifies tokens signed by a test RSA key
whose JWKS this test serves on 127.0.0.1, as Google serves its own; start-up refuses to run
with verification off by omission. Each token rule is in tests/unit/test_push_auth.py."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from localcloud import chaos
from localcloud.taps import TopicTap
from tests.support.pushes import envelope, seed_job
from tests.support.tokens import AUDIENCE, PUSH_SA, jwks_server, new_key, token


@pytest.fixture(scope="module")
def signing_key():
    return new_key()


@pytest.fixture(scope="module")
def jwks(signing_key):
    with jwks_server(signing_key) as served:
        yield served


@pytest.fixture(scope="module")
def jwks_url(jwks):
    return jwks[0]


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


def test_valid_push_token_is_accepted_and_work_is_published(http, stack, secured_analyze, analyzed_tap, signing_key):
    payload = seed_job(stack)
    resp = http.post(secured_analyze, json=envelope(payload, "media-ingested.v1"),
                     headers={"Authorization": f"Bearer {token(signing_key)}"}, timeout=30)
    assert resp.status_code == 204, resp.text
    deadline = time.monotonic() + 20
    while not analyzed_tap.for_job(payload["job_id"]) and time.monotonic() < deadline:
        analyzed_tap.drain()
        time.sleep(0.2)
    [(attrs, data)] = analyzed_tap.for_job(payload["job_id"])
    assert attrs["schema"].startswith("media-analyzed.") and data["analysis"]["width"] == 320


def test_unknown_key_ids_are_401_and_do_not_refetch_the_certs_per_request(http, stack, signing_key):
    """A stream of tokens naming made-up key ids: each is refused with 401 (not a 500), and
    together cost no fetch beyond the first: refetches for unknown ids are at most one per
    CERTS_REFETCH_MIN_SECONDS (here an hour), not one per request."""
    with jwks_server(signing_key) as (url, fetches):
        env = {"PUSH_VERIFICATION": "on", "PUSH_AUDIENCE": AUDIENCE, "PUSH_SERVICE_ACCOUNT": PUSH_SA,
               "PUSH_CERTS_URL": url, "CERTS_REFETCH_MIN_SECONDS": "3600"}
        with chaos.extra_instance(stack, "analyze", env) as base:
            payload = seed_job(stack)
            for _ in range(20):
                forged = token(new_key(), kid=f"made-up-{uuid.uuid4().hex[:8]}")
                resp = http.post(f"{base}/push", json=envelope(payload, "media-ingested.v1"),
                                 headers={"Authorization": f"Bearer {forged}"}, timeout=30)
                assert resp.status_code == 401, resp.text
                assert resp.headers["Content-Type"] == "application/problem+json"
                assert "unknown key" in resp.json()["detail"]
            assert len(fetches) == 1
            ok = http.post(f"{base}/push", json=envelope(payload, "media-ingested.v1"),
                           headers={"Authorization": f"Bearer {token(signing_key)}"}, timeout=30)
            assert ok.status_code == 204, ok.text


START = ("import sys\nfrom services.{service}.app import create_app\n"
         "try:\n    create_app()\nexcept Exception as exc:\n    print(exc); sys.exit(3)\nprint('started')\n")


def _start(service: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in (
        "PUSH_VERIFICATION", "PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNT", "SCHEDULER_SERVICE_ACCOUNT")}
    return subprocess.run([sys.executable, "-c", START.format(service=service)], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


@pytest.mark.parametrize("service, env, missing", [
    ("analyze", {}, "PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT"),
    ("analyze", {"PUSH_AUDIENCE": AUDIENCE}, "PUSH_SERVICE_ACCOUNT"),
    ("ingest", {"PUSH_SERVICE_ACCOUNT": PUSH_SA}, "PUSH_AUDIENCE"),
    ("notify", {"PUSH_AUDIENCE": AUDIENCE, "PUSH_SERVICE_ACCOUNT": PUSH_SA}, "SCHEDULER_SERVICE_ACCOUNT"),
])
def test_a_service_refuses_to_start_with_push_verification_off_by_omission(stack, service, env, missing):
    out = _start(service, **env)
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"{missing} {'are' if ',' in missing else 'is'} empty" in out.stdout
    assert "PUSH_VERIFICATION=off" in out.stdout  # ...and how to run without it on purpose


def test_verification_off_on_purpose_starts_and_says_so(stack):
    out = _start("analyze", PUSH_VERIFICATION="off")
    assert out.returncode == 0 and out.stdout.strip().endswith("started"), out.stdout + out.stderr
    assert "push verification is OFF" in out.stdout  # the start-up log (JSON lines on stdout)
