"""Upload clients: who is calling ingest.

Two kinds of credential, both as `Authorization: Bearer ...`:
- API keys `mr_<client id>_<secret>`, made by `mediarelay clients create`. Firestore
  `clients/{client id}` keeps only the secret's SHA-256 (a 256-bit random secret needs no slow
  hash: there is nothing to brute-force), found by the id the key starts with and compared in
  constant time. Documents are cached per process for API_KEY_CACHE_SECONDS, so a revoked key
  stops working within that time and most requests cost no read.
- Google-signed ID tokens (service accounts, apps on Firebase Auth), checked against
  CLIENT_TOKEN_AUDIENCES / CLIENT_TOKEN_ISSUERS; the client is the token's issuer + subject.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from ..common.config import Settings
from ..pipeline.auth import TokenVerifier, bearer_token, unauthorized
from ..pipeline.docstore import FirestoreCollection
from ..pipeline.jobstore import utcnow
from ..pipeline.retrying import retried

KEY_PREFIX = "mr_"
COLLECTION = "clients"
# ID-token clients' ids: the prefix and 20 hex digits. API-key clients' ids are 12 hex digits,
# so the two never meet; only API-key clients have a document (and can be revoked here).
TOKEN_CLIENT_PREFIX = "t"


def is_token_client(client_id: str) -> bool:
    return client_id.startswith(TOKEN_CLIENT_PREFIX)


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    operator: bool = False  # sees every client's stats
    quotas: dict = field(default_factory=dict)  # per-client overrides of the quota settings


def new_key(client_id: str) -> tuple[str, str]:
    """(the key as shown once to its owner, the hash that is stored)."""
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{client_id}_{secret}", _hash(secret)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_id_of(key: str) -> str | None:
    """The client an API key belongs to (not a check: by_key() checks)."""
    parsed = _parse_key(key)
    return parsed[0] if parsed else None


def _parse_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(KEY_PREFIX):
        return None
    client_id, sep, secret = key[len(KEY_PREFIX):].partition("_")
    if not sep or not client_id.isalnum() or not secret or len(key) > 200:
        return None
    return client_id, secret


class ClientStore(FirestoreCollection):
    collection = COLLECTION

    def __init__(self, project: str, cache_seconds: float = 30.0):
        super().__init__(project)
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict | None]] = {}
        self._lock = threading.Lock()

    @retried("firestore")
    def create(self, name: str, operator: bool = False, quotas: dict | None = None) -> tuple[dict, str]:
        """A new client; returns (its document, its API key). The key is not stored."""
        client_id = secrets.token_hex(6)
        key, key_hash = new_key(client_id)
        doc = {"client_id": client_id, "name": name, "key_sha256": key_hash, "operator": operator,
               "quotas": quotas or {}, "created_at": utcnow(), "revoked_at": None}
        self._ref(client_id).create(doc)
        return doc, key

    @retried("firestore")
    def list(self) -> list[dict]:
        return sorted((s.to_dict() for s in self.client.collection(COLLECTION).stream()), key=lambda d: d["created_at"])

    @retried("firestore")
    def revoke(self, client_id: str) -> bool:
        snap = self._ref(client_id).get()
        if not snap.exists:
            return False
        self._ref(client_id).update({"revoked_at": utcnow()})
        return True

    @retried("firestore")
    def current(self, client_id: str) -> dict | None:
        """The client's document as it is now (no cache)."""
        snap = self._ref(client_id).get()
        return snap.to_dict() if snap.exists else None

    def doc(self, client_id: str) -> dict | None:
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit and now - hit[0] < self.cache_seconds:
            return hit[1]
        doc = self.current(client_id)
        with self._lock:
            if len(self._cache) > 10_000:  # unknown ids are cached too: bound the memory they take
                self._cache.clear()
            self._cache[client_id] = (now, doc)
        return doc

    def by_key(self, key: str) -> Client | None:
        parsed = _parse_key(key)
        if parsed is None:
            return None
        client_id, secret = parsed
        doc = self.doc(client_id)
        if doc is None or not hmac.compare_digest(doc["key_sha256"], _hash(secret)) or doc.get("revoked_at"):
            return None
        return Client(client_id, doc["name"], bool(doc.get("operator")), dict(doc.get("quotas") or {}))


class Authenticator:
    """The caller of the current request, or a 401 problem."""

    def __init__(self, settings: Settings):
        self.clients = ClientStore(settings.project, settings.api_key_cache_seconds)
        self.tokens = None
        if settings.client_token_audiences:
            self.tokens = TokenVerifier(settings.client_token_audiences, settings.client_token_issuers,
                                        settings.client_token_certs_url, settings.certs_refetch_min_seconds)

    def authenticate(self, authorization: str | None) -> Client:
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized("send an API key (or a Google ID token) as 'Authorization: Bearer <key>'",
                               "invalid_request")
        if token.startswith(KEY_PREFIX):
            client = self.clients.by_key(token)
            if client is None:
                raise unauthorized("the API key is unknown or revoked")
            return client
        if self.tokens is None:
            raise unauthorized("not an API key, and ID tokens are not accepted here (CLIENT_TOKEN_AUDIENCES is empty)")
        claims = self.tokens.claims(token)
        if not claims.get("sub"):
            raise unauthorized("token has no subject")
        # One stable, opaque owner id per (issuer, subject): ids never contain what a token says.
        digest = hashlib.sha256(f"{claims['iss']}\0{claims['sub']}".encode()).hexdigest()[:20]
        return Client(f"{TOKEN_CLIENT_PREFIX}{digest}", claims.get("email") or claims["sub"])
