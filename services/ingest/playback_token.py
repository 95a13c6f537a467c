"""Playback tokens: a compact JWT (HS256) naming one job and the playback scope, with an expiry.

Why a JWT of our own and not a signed URL: the token is the one credential a player carries (in
the path of every playlist it fetches), checked by our playlist route only, so a shared secret
(HS256) is enough and costs no key-service call. The header carries the key id: keys rotate by
listing the new key first in PLAYBACK_TOKEN_KEYS and keeping the old one for a token lifetime.
Only `alg: HS256` is accepted (no `none`, no algorithm chosen by the token).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

SCOPE = "playback"
ISSUER = "mediarelay"


class BadToken(Exception):
    """The token is malformed, forged, expired, signed by an unknown key, or for another scope."""


@dataclass(frozen=True)
class Grant:
    job_id: str
    expires_at: int  # epoch seconds
    kid: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(keys: tuple[tuple[str, bytes], ...], job_id: str, now: int, ttl_seconds: int) -> tuple[str, int]:
    """(token, expiry) for playback of `job_id`, signed with the first key."""
    kid, secret = keys[0]
    exp = now + ttl_seconds
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
    claims = {"iss": ISSUER, "sub": job_id, "scope": SCOPE, "iat": now, "exp": exp}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}", exp


def check(keys: tuple[tuple[str, bytes], ...], token: str, now: int) -> Grant:
    """The grant a valid token carries, else BadToken (the reason is for logs, never for the client)."""
    try:
        header_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        signature = _unb64(sig_b64)
    except ValueError:
        raise BadToken("malformed") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise BadToken("algorithm")
    secret = dict(keys).get(str(header.get("kid")))
    if secret is None:
        raise BadToken("unknown key id (rotated out?)")
    expected = hmac.new(secret, f"{header_b64}.{body_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise BadToken("signature")
    try:
        claims = json.loads(_unb64(body_b64))
        job_id, exp = str(claims["sub"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise BadToken("claims") from None
    if claims.get("scope") != SCOPE or claims.get("iss") != ISSUER:
        raise BadToken("scope")
    if exp <= now:
        raise BadToken("expired")
    return Grant(job_id, exp, str(header["kid"]))
