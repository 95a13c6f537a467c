"""Standard Webhooks signatures (https://www.standardwebhooks.com): the headers a receiver
verifies with any implementation of the standard.

`webhook-id` is the event id (stable across retries, so receivers drop duplicates),
`webhook-timestamp` the send time in Unix seconds, `webhook-signature` a space-separated list
of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret still valid (two while a
rotation overlaps). Secrets are `whsec_` + base64 of 32 random bytes.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }
