"""Push authentication end to end: an analyze under gunicorn with PUSH_AUDIENCE set (beside
the stack's own, which the emulator pushes to) verifies tokens signed by a test key whose
JWKS the test serves on 127.0.0.1. Every token rule is in tests/unit/test_push_auth.py."""
from __future__ import annotations

import pytest

from localcloud import chaos
from localcloud.taps import TopicTap
from services.common.status import JobStore
from tests import tokens


@pytest.fixture(scope="module")
def signing_key():
    return tokens.new_key()


@pytest.fixture(scope="module")
def secured_analyze(stack, signing_key):
    with tokens.jwks_server(signing_key) as jwks_url:
        env = {"PUSH_AUDIENCE": tokens.AUDIENCE, "PUSH_SERVICE_ACCOUNT": tokens.PUSH_SA, "PUSH_CERTS_URL": jwks_url}
        with chaos.extra_instance(stack, "analyze", env) as url:
            yield url + "/push"


def test_a_deployed_service_refuses_an_unsigned_push_and_accepts_a_signed_one(http, stack, secured_analyze, signing_key):
    payload = chaos.seed_job(stack)
    refused = http.post(secured_analyze, json=chaos.envelope(payload, "media-ingested.v1"), timeout=30)
    assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/problem+json"
    assert JobStore(stack.project).get(payload["job_id"])["stages"]["analyze"]["attempts"] == 0

    analyzed = TopicTap(stack.project, "media-analyzed")
    try:
        resp = http.post(secured_analyze, json=chaos.envelope(payload, "media-ingested.v1"),
                         headers={"Authorization": f"Bearer {tokens.token(signing_key)}"}, timeout=30)
        assert resp.status_code == 204, resp.text
        [(attrs, data)] = analyzed.wait_and_get(payload["job_id"], timeout=20)
        assert attrs["schema"].startswith("media-analyzed.") and data["analysis"]["width"] == 320
    finally:
        analyzed.close()
