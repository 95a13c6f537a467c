"""Verifies the OIDC token Pub/Sub attaches to push requests.

Active only when an expected audience is configured (production). Cloud Run IAM already
admits only the push service account; this second check keeps a misconfigured ingress
from turning the push endpoints into an open door.
"""
from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicNumbers
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from google.auth import exceptions as gauth_exceptions
from google.auth import jwt

from ..common.config import Settings
from ..common.errors import HTTPProblem, TransientError

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_DEFAULT_CERT_TTL = 3600.0
# google.auth.jwt is untyped: its two calls we make, typed at the boundary.
_decode_header = cast(Callable[[str], dict[str, Any]], jwt.decode_header)
_decode = cast(Callable[..., dict[str, Any]], jwt.decode)


def _b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _jwks_to_pem(jwks: dict[str, Any]) -> dict[str, str]:
    """Google serves certs as PEM (v1) or JWKS (v3, RSA; IAP's EC P-256); google.auth.jwt wants PEM by key id."""
    certs = {}
    for key in jwks.get("keys", []):
        if "kid" not in key:
            continue
        public: Any
        if key.get("kty") == "RSA":
            public = RSAPublicNumbers(_b64int(key["e"]), _b64int(key["n"])).public_key()
        elif key.get("kty") == "EC" and key.get("crv") == "P-256":  # IAP signs ES256
            public = EllipticCurvePublicNumbers(_b64int(key["x"]), _b64int(key["y"]), SECP256R1()).public_key()
        else:
            continue
        certs[key["kid"]] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    return certs


class CertCache:
    """Fetches signing certs once per their Cache-Control max-age, not once per request.

    A token naming an unknown key id may force a refetch (Google rotates keys), but at most
    once per `refetch_min_seconds`: a stream of forged key ids costs one fetch, not one per
    request. Readers never wait for a fetch while the cached certs are fresh.
    """

    def __init__(self, url: str, timeout: float = 5.0, refetch_min_seconds: float = 30.0):
        self.url = url
        self.timeout = timeout
        self.refetch_min_seconds = refetch_min_seconds
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def get(self, *, refresh: bool = False) -> dict[str, str]:
        now = time.monotonic()
        if now < self._expires and not (refresh and now - self._fetched >= self.refetch_min_seconds):
            return self._certs
        with self._lock:
            now = time.monotonic()  # another thread may have fetched while this one waited
            stale = now >= self._expires
            if stale or (refresh and now - self._fetched >= self.refetch_min_seconds):
                self._fetch()
            return self._certs

    def _fetch(self) -> None:
        try:
            resp = requests.get(self.url, timeout=self.timeout)
            resp.raise_for_status()
            doc = resp.json()
        except (requests.RequestException, ValueError) as exc:
            if self._certs:  # keep verifying with the keys we have; try again a little later
                self._expires = time.monotonic() + self.refetch_min_seconds
                return
            raise TransientError(f"cannot fetch token signing keys from {self.url}: {type(exc).__name__}") from None
        self._certs = _jwks_to_pem(doc) if "keys" in doc else dict(doc)
        self._fetched = time.monotonic()
        self._expires = self._fetched + _max_age(resp.headers.get("Cache-Control", ""))


def _max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name == "max-age" and value.isdigit():
            return float(value)
    return _DEFAULT_CERT_TTL


class ConfigurationError(RuntimeError):
    """A setting that makes the service unsafe or unusable: it refuses to start."""


def unauthorized(detail: str, error: str = "invalid_token") -> HTTPProblem:
    """401 with the challenge RFC 6750 asks for."""
    return HTTPProblem(401, "Unauthorized", detail,
                       headers={"WWW-Authenticate": f'Bearer realm="mediarelay", error="{error}"'})


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or not authorization[:7].lower() == "bearer ":
        return None
    return authorization[7:].strip() or None


class TokenVerifier:
    """Google-signed JWTs (RS256) checked against cached certs, audience(s) and issuers."""

    def __init__(self, audience: str | tuple[str, ...], issuers: tuple[str, ...], certs_url: str,
                 refetch_min_seconds: float = 30.0):
        self.audience = list(audience) if isinstance(audience, tuple) else audience
        self.issuers = issuers
        self.certs = CertCache(certs_url, refetch_min_seconds=refetch_min_seconds)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`; raise a 401 HTTPProblem when it is not good."""
        try:
            header = _decode_header(token)
        except Exception:  # noqa: BLE001 - whatever google.auth raises on a malformed token means the same: not a JWT
            raise unauthorized("bearer token is not a JWT") from None
        kid = header.get("kid")
        certs = self.certs.get()
        if kid and kid not in certs:
            certs = self.certs.get(refresh=True)  # Google rotates keys: look once more (rate-limited)
            if kid not in certs:
                raise unauthorized("token is signed by an unknown key")
        try:
            claims = _decode(token, certs=certs, audience=self.audience)
        except (ValueError, gauth_exceptions.GoogleAuthError) as exc:
            raise unauthorized(f"invalid token: {_reason(exc)}") from None
        if claims.get("iss") not in self.issuers:
            raise unauthorized("token issuer is not one this service accepts")
        return claims


def _reason(exc: Exception) -> str:
    """google-auth's messages carry token contents (claims, times); keep the first clause."""
    text = str(exc).split(":")[0].split(". ")[0]
    return text[:120] or type(exc).__name__


class PushTokenVerifier:
    def __init__(self, audience: str, service_account: str, certs_url: str, refetch_min_seconds: float = 30.0):
        self.service_account = service_account
        self.tokens = TokenVerifier(audience, GOOGLE_ISSUERS, certs_url, refetch_min_seconds)

    @property
    def certs(self) -> CertCache:
        return self.tokens.certs

    def verify(self, authorization: str | None, account: str | None = None) -> dict[str, Any]:
        """Return the token's claims; raise HTTPProblem 401 (bad token) or 403 (wrong caller).

        `account` is the service account the token must belong to (default: the push one)."""
        expected = self.service_account if account is None else account
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized("push request carries no bearer token", "invalid_request")
        claims = self.tokens.claims(token)
        if not expected or claims.get("email") != expected or not claims.get("email_verified"):
            raise HTTPProblem(403, "Forbidden", f"token is not from {expected or 'the expected account'}")
        return claims


def push_verifier(settings: Settings) -> PushTokenVerifier | None:
    """The verifier of push (and scheduler) tokens, or None when PUSH_VERIFICATION=off."""
    if settings.push_verification == "off" or not settings.push_audience:
        return None
    return PushTokenVerifier(settings.push_audience, settings.push_service_account, settings.push_certs_url,
                             settings.certs_refetch_min_seconds)


def check_push_settings(settings: Settings, *, scheduler: bool = False) -> str:
    """At service start-up: refuse to run with push verification off by omission.

    Returns "on" or "off" (for /healthz and the start-up log)."""
    if settings.push_verification == "off":
        return "off"
    if settings.push_verification != "on":
        raise ConfigurationError(f"PUSH_VERIFICATION={settings.push_verification!r}: expected on or off")
    required = {"PUSH_AUDIENCE": settings.push_audience, "PUSH_SERVICE_ACCOUNT": settings.push_service_account}
    if scheduler:
        required["SCHEDULER_SERVICE_ACCOUNT"] = settings.scheduler_service_account
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} empty, so push requests could not be "
            "verified: set them, or set PUSH_VERIFICATION=off to run without verification on purpose "
            "(the local cloud does: its Pub/Sub emulator sends no token)")
    return "on"
