"""Push envelopes: both forms Pub/Sub sends are understood; anything else is a 400 problem.
In-process but for the unwrapped form, whose header quirks only gunicorn and the emulator show."""
from __future__ import annotations

import base64
import json

import pytest
from werkzeug.datastructures import Headers

from services.common.errors import HTTPProblem
from services.pipeline.envelope import parse_push
from services.pipeline.jobstate import STAGES


def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.b64encode(raw).decode()


def test_wrapped_envelope_is_decoded():
    body = {"message": {"data": b64({"job_id": "abc"}), "attributes": {"job_id": "abc", "schema": "s.v1"},
                        "messageId": "42", "publishTime": "2026-01-01T00:00:00Z"},
            "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3}
    msg = parse_push(json.dumps(body).encode(), Headers())
    assert msg.data == {"job_id": "abc"}
    assert msg.attributes == {"job_id": "abc", "schema": "s.v1"}
    assert (msg.message_id, msg.delivery_attempt, msg.wrapped) == ("42", 3, True)


def test_unwrapped_body_is_the_message_and_metadata_comes_from_headers():
    headers = Headers({"x-goog-pubsub-message-id": "7", "x-goog-pubsub-subscription-name": "s",
                       "x-goog-pubsub-delivery-attempt": "2", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                       "Content-Type": "application/x-www-form-urlencoded"})  # the emulator's; never trusted
    msg = parse_push(json.dumps({"job_id": "abc"}).encode(), headers)
    assert msg.data == {"job_id": "abc"} and not msg.wrapped
    assert (msg.message_id, msg.delivery_attempt, msg.subscription) == ("7", 2, "s")
    assert msg.attributes["traceparent"].startswith("00-aaaa")


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", "empty"),
        (b"not json at all", "not JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (json.dumps({"message": {"attributes": {}}}).encode(), "data is missing"),
        (json.dumps({"message": {"data": "%%%not-base64%%%"}}).encode(), "base64"),
        (json.dumps({"message": {"data": b64(b"\xff\xfe binary")}}).encode(), "not JSON"),
        (json.dumps({"message": {"data": b64([1, 2])}}).encode(), "JSON object"),
        (json.dumps({"message": {"data": b64({"a": 1}), "attributes": "x"}}).encode(), "attributes"),
        (json.dumps({"message": {"data": b64({"a": 1})}, "deliveryAttempt": "two"}).encode(), "deliveryAttempt"),
    ],
)
def test_malformed_envelopes_are_400_with_a_reason(body, words):
    with pytest.raises(HTTPProblem) as err:
        parse_push(body, Headers())
    assert err.value.status == 400 and words in err.value.detail


@pytest.fixture(scope="module")
def pipeline():
    from tests.support.fakes import Pipeline

    return Pipeline()


@pytest.mark.parametrize("service", STAGES)
@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"message": {"data": "@@@"}}', b'{"message": {"data": ""}}', b"[]"],
)
def test_services_answer_malformed_pushes_with_400_problem_json(pipeline, service, body):
    resp = pipeline.clients[service].post("/push", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/problem+json"
    problem = resp.json
    assert problem["status"] == 400 and problem["title"] == "Malformed push envelope" and problem["detail"]


def test_schema_invalid_message_is_acknowledged_and_dead_lettered(pipeline):
    """Retrying a message that breaks its schema can never succeed: 204 + dead letter, not 400 loops."""
    body = {"message": {"data": b64({"job_id": "nosuchjob0001", "kind": "sculpture"}),
                        "attributes": {"schema": "media-ingested.v1"}, "messageId": "99"}}
    resp = pipeline.clients["analyze"].post("/push", json=body)
    assert resp.status_code == 204
    [dead] = [m for m in pipeline.dead_letters("analyze") if m.payload.get("job_id") == "nosuchjob0001"]
    assert dead.attributes["error_class"] == "bad-message" and dead.attributes["stage"] == "analyze"
    assert "media-ingested.v1" in dead.attributes["error_reason"]




@pytest.mark.parametrize("attempt", ["²", "٣", "x", ""])
def test_a_delivery_attempt_header_that_is_not_ascii_digits_is_ignored_not_a_crash(attempt):
    headers = Headers({"x-goog-pubsub-message-id": "7", "x-goog-pubsub-delivery-attempt": attempt})
    assert parse_push(json.dumps({"job_id": "abc"}).encode(), headers).delivery_attempt is None
