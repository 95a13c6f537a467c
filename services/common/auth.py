"""Verifies the OIDC token Pub/Sub attaches to push requests.

Active only when an expected audience is configured (production). Cloud Run IAM already
admits only the push service account; this second check keeps a misconfigured ingress
from turning the push endpoints into an open door.
"""
from __future__ import annotations

import base64
import threading
import time

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from google.auth import exceptions as gauth_exceptions
from google.auth import jwt

from .errors import HTTPProblem

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_DEFAULT_CERT_TTL = 3600.0


def _b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _jwks_to_pem(jwks: dict) -> dict[str, str]:
    """Google serves certs as PEM (v1) or JWKS (v3); google.auth.jwt wants PEM by key id."""
    certs = {}
    for key in jwks.get("keys", []):
        if key.get("kty") != "RSA" or "kid" not in key:
            continue
        public = RSAPublicNumbers(_b64int(key["e"]), _b64int(key["n"])).public_key()
        certs[key["kid"]] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    return certs


class CertCache:
    """Fetches signing certs once per their Cache-Control max-age, not once per request."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self, *, refresh: bool = False) -> dict[str, str]:
        with self._lock:
            if refresh or time.monotonic() >= self._expires:
                resp = requests.get(self.url, timeout=self.timeout)
                resp.raise_for_status()
                doc = resp.json()
                self._certs = _jwks_to_pem(doc) if "keys" in doc else dict(doc)
                self._expires = time.monotonic() + _max_age(resp.headers.get("Cache-Control", ""))
            return self._certs


def _max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name == "max-age" and value.isdigit():
            return float(value)
    return _DEFAULT_CERT_TTL


class PushTokenVerifier:
    def __init__(self, audience: str, service_account: str, certs_url: str):
        self.audience = audience
        self.service_account = service_account
        self.certs = CertCache(certs_url)

    def verify(self, authorization: str | None, account: str | None = None) -> dict:
        """Return the token's claims; raise HTTPProblem 401 (bad token) or 403 (wrong caller).

        `account` is the service account the token must belong to (default: the push one)."""
        expected = self.service_account if account is None else account
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPProblem(401, "Unauthorized", "push request carries no bearer token")
        token = authorization[len("Bearer "):].strip()
        claims = self._decode(token)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise HTTPProblem(401, "Unauthorized", "token issuer is not Google")
        if expected and (claims.get("email") != expected or not claims.get("email_verified")):
            raise HTTPProblem(403, "Forbidden", f"token is not from {expected}")
        return claims

    def _decode(self, token: str) -> dict:
        try:
            return self._decode_with(self.certs.get(), token)
        except _UnknownKey:
            # Google rotates keys: one refetch before calling the token forged.
            return self._decode_with(self.certs.get(refresh=True), token)

    def _decode_with(self, certs: dict, token: str) -> dict:
        try:
            header = jwt.decode_header(token)
        except Exception:
            raise HTTPProblem(401, "Unauthorized", "bearer token is not a JWT") from None
        if header.get("kid") and header["kid"] not in certs:
            raise _UnknownKey()
        try:
            return jwt.decode(token, certs=certs, audience=self.audience)
        except (ValueError, gauth_exceptions.GoogleAuthError) as exc:
            raise HTTPProblem(401, "Unauthorized", f"invalid push token: {exc}") from None


class _UnknownKey(Exception):
    pass

