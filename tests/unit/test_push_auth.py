"""Push and scheduler authentication rules, in-process: a stage app whose runtime verifies
OIDC tokens against a test key's JWKS served on 127.0.0.1."""
from __future__ import annotations

import dataclasses
import time

import pytest

from services.notify.app import create_app as create_notify
from services.pipeline.auth import PushTokenVerifier
from tests.support import tokens
from tests.support.fakes import Pipeline, ingested, memory_runtime
from tests.support.pushes import envelope


@pytest.fixture(scope="module")
def signing_key():
    return tokens.new_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key):
    with tokens.jwks_server(signing_key) as (url, _fetches):
        yield url


@pytest.fixture
def secured(jwks_url):
    p = Pipeline()
    p.rt.verifier = PushTokenVerifier(tokens.AUDIENCE, tokens.PUSH_SA, jwks_url)
    return p


@pytest.mark.parametrize(
    "case, expected",
    [("missing", 401), ("forged", 401), ("expired", 401), ("wrong-audience", 401),
     ("wrong-issuer", 401), ("wrong-account", 403), ("unverified-email", 403), ("not-a-jwt", 401)],
)
def test_bad_push_tokens_are_refused_and_nothing_happens(secured, signing_key, case, expected):
    now = int(time.time())
    bad = {  # only this case's token is made (a new key takes a while)
        "missing": lambda: None,
        "forged": lambda: tokens.token(tokens.new_key()),  # same kid, another key
        "expired": lambda: tokens.token(signing_key, iat=now - 7200, exp=now - 3600),
        "wrong-audience": lambda: tokens.token(signing_key, aud="https://someone-else.example"),
        "wrong-issuer": lambda: tokens.token(signing_key, iss="https://evil.example"),
        "wrong-account": lambda: tokens.token(signing_key, email="intruder@evil.iam.gserviceaccount.com"),
        "unverified-email": lambda: tokens.token(signing_key, email_verified=False),
        "not-a-jwt": lambda: "definitely-not-a-token",
    }[case]()
    job_id = secured.seed()
    headers = {"Authorization": f"Bearer {bad}"} if bad else {}
    resp = secured.clients["analyze"].post("/push", json=envelope(ingested(job_id), "media-ingested.v1"), headers=headers)
    assert resp.status_code == expected, resp.json
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert secured.calls["analyze"] == 0 and secured.rt.bus.messages == []
    job = secured.job(job_id)
    assert job["stages"]["analyze"]["attempts"] == 0 and job["status"] == "received"


def test_a_valid_push_token_is_accepted(secured, signing_key):
    job_id = secured.seed()
    resp = secured.clients["analyze"].post("/push", json=envelope(ingested(job_id), "media-ingested.v1"),
                                           headers={"Authorization": f"Bearer {tokens.token(signing_key)}"})
    assert resp.status_code == 204
    assert [m.topic for m in secured.rt.bus.messages] == ["media-analyzed"]


def test_the_sweep_endpoint_admits_only_the_scheduler_account(jwks_url, signing_key):
    rt = memory_runtime()
    rt.settings = dataclasses.replace(rt.settings, scheduler_service_account=tokens.SCHEDULER_SA)
    rt.verifier = PushTokenVerifier(tokens.AUDIENCE, tokens.PUSH_SA, jwks_url)
    client = create_notify(runtime=rt).test_client()
    url = "/ops/sweep?dry_run=true"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": f"Bearer {tokens.token(signing_key)}"}).status_code == 403
    ok = client.post(url, headers={"Authorization": f"Bearer {tokens.token(signing_key, email=tokens.SCHEDULER_SA)}"})
    assert ok.status_code == 200 and ok.json["dry_run"] is True
