"""Endpoint secrets encrypted at rest: AES-256-GCM under WEBHOOK_SECRETS_KEY (from Secret
Manager in production; the local cloud makes a throwaway one). Firestore only ever holds the
ciphertext; the clear secret exists in memory while signing, and once in the API answer that
creates or rotates it."""
from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    def __init__(self, key_b64: str):
        try:
            key = base64.b64decode(key_b64, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValueError("WEBHOOK_SECRETS_KEY must be 32 random bytes, base64-encoded (e.g. `openssl rand -base64 32`)")
        self._aead = AESGCM(key)

    def seal(self, secret: str, context: str) -> str:
        """`context` (the endpoint id) is bound in: a ciphertext moved to another endpoint fails."""
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, secret.encode(), context.encode())).decode()

    def open(self, sealed: str, context: str) -> str:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
