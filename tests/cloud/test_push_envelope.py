"""Push envelopes: both forms Pub/Sub sends are understood; anything else is a 400 problem.
In-process but for the unwrapped form, whose header quirks only gunicorn and the emulator show."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def pipeline():
    from tests.support.fakes import Pipeline

    return Pipeline()


def test_unwrapped_push_is_processed_like_a_wrapped_one(http, stack):
    """no_wrapper subscriptions: the body is the message; the emulator even labels it a form."""
    from services.pipeline.jobstore import JobStore
    from tests.support.pushes import seed_job

    payload = seed_job(stack)
    resp = http.post(f"{stack.url('analyze')}/push", data=json.dumps(payload).encode(), timeout=30,
                     headers={"Content-Type": "application/x-www-form-urlencoded", "x-goog-pubsub-message-id": "77",
                              "x-goog-pubsub-subscription-name": "analyze-media-ingested"})
    assert resp.status_code == 204, resp.text
    job = JobStore(stack.project).get(payload["job_id"])
    assert job["stages"]["analyze"]["state"] == "done" and job["analysis"]["width"] == 320
