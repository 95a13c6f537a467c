"""Parses a Pub/Sub push request, in both of the forms Pub/Sub sends.

Wrapped (default): JSON `{"message": {"data": b64, "attributes", "messageId", "publishTime"},
"subscription", "deliveryAttempt"}`. Unwrapped (`no_wrapper`): the body is the message data,
metadata in `x-goog-pubsub-*` headers and attributes as plain headers. The emulator sends
unwrapped bodies as form-urlencoded, so the Content-Type is never trusted.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers

from ..common.errors import HTTPProblem


@dataclass
class PushMessage:
    data: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    publish_time: str = ""
    subscription: str = ""
    delivery_attempt: int | None = None
    wrapped: bool = True


def _bad(detail: str) -> HTTPProblem:
    return HTTPProblem(400, "Malformed push envelope", detail)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _bad(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def parse_push(body: bytes, headers: Headers) -> PushMessage:
    if not body:
        raise _bad("empty request body")
    doc = _json_object(body, "request body")
    if "message" in doc and isinstance(doc.get("message"), dict):
        return _parse_wrapped(doc)
    return _parse_unwrapped(doc, headers)


def _parse_wrapped(doc: dict[str, Any]) -> PushMessage:
    msg = doc["message"]
    data_b64 = msg.get("data")
    if not isinstance(data_b64, str) or not data_b64:
        raise _bad("message.data is missing")
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"message.data is not valid base64: {exc}") from None
    attributes = msg.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _bad("message.attributes must be an object")
    attempt = doc.get("deliveryAttempt")
    if attempt is not None and not isinstance(attempt, int):
        raise _bad("deliveryAttempt must be an integer")
    return PushMessage(
        data=_json_object(raw, "message.data"),
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_id=str(msg.get("messageId") or msg.get("message_id") or ""),
        publish_time=str(msg.get("publishTime") or msg.get("publish_time") or ""),
        subscription=str(doc.get("subscription") or ""),
        delivery_attempt=attempt,
        wrapped=True,
    )


# Attributes we read back from headers in the unwrapped form (gunicorn drops header names
# with underscores, so `job_id` and `schema` are taken from the body and the route instead).
_HEADER_ATTRIBUTES = ("traceparent", "replay_count")


def _parse_unwrapped(doc: dict[str, Any], headers: Headers) -> PushMessage:
    attempt = headers.get("x-goog-pubsub-delivery-attempt")
    attributes = {k: v for k in _HEADER_ATTRIBUTES if (v := headers.get(k))}
    return PushMessage(
        data=doc,
        attributes=attributes,
        message_id=headers.get("x-goog-pubsub-message-id", ""),
        publish_time=headers.get("x-goog-pubsub-publish-time", ""),
        subscription=headers.get("x-goog-pubsub-subscription-name", ""),
        delivery_attempt=int(attempt) if attempt and attempt.isascii() and attempt.isdigit() else None,
        wrapped=False,
    )
