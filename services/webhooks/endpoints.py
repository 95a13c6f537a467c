"""Clients' webhook endpoints, `webhook_endpoints/{id}` in Firestore.

A document: id, client_id, url (normalised, urls.py), events (`completed`, `failed`, `deleted`), secrets
(sealed by SecretBox, newest first, each with an `expires_at` once rotated out), `disabled`
(why, when the receiver answered 410), `health` (what the client is told: `state` ok, failing,
circuit-open, unhealthy after a dead-lettered delivery, or refused by the SSRF guard; `reason`;
`last_status`, `latency_ms`, `last_success_at`; `last_error`, `last_error_at`,
`consecutive_failures`), `breaker` (breaker.py). The clear secret is returned once, on create
and rotate, and never stored or logged.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..common.errors import TransientError
from ..pipeline.docstore import FirestoreCollection
from ..pipeline.jobstate import DELETE
from ..pipeline.jobstore import CAS_ATTEMPTS, Conflict, utcnow
from ..pipeline.retrying import retried
from . import signing
from .secretbox import SecretBox

EVENT_TYPES = ("completed", "failed", "deleted", "playable")  # media-events.v3 statuses (deleted, playable: lifecycle events)
T = TypeVar("T")


class EndpointStore(FirestoreCollection):
    collection = "webhook_endpoints"

    def __init__(self, project: str, box: SecretBox | None):
        super().__init__(project)
        self.box = box

    def _sealed(self) -> SecretBox:
        if self.box is None:
            raise RuntimeError("WEBHOOK_SECRETS_KEY is not set: webhook secrets cannot be sealed or opened")
        return self.box

    # --- the Firestore calls (tests/fakes.py MemoryEndpointStore replaces just these) ---------

    def _create(self, endpoint_id: str, doc: dict) -> None:
        self._ref(endpoint_id).create(doc)

    def _read(self, endpoint_id: str) -> tuple[dict | None, object]:
        """(document or None, version token for _write_if)."""
        snap = self._ref(endpoint_id).get()
        return (snap.to_dict() if snap.exists else None), snap.update_time

    def _write_if(self, endpoint_id: str, updates: dict, version: object) -> None:
        """Apply dotted-path `updates` if the document is still at `version`, else Conflict."""
        try:
            self._ref(endpoint_id).update(_firestore(updates), option=self.client.write_option(last_update_time=version))
        except (gexc.FailedPrecondition, gexc.NotFound):
            raise Conflict() from None

    @retried("firestore")
    def update(self, endpoint_id: str, fields: dict) -> None:
        self._ref(endpoint_id).update(_firestore(fields))

    @retried("firestore")
    def delete(self, endpoint_id: str) -> None:
        self._ref(endpoint_id).delete()

    @retried("firestore")
    def for_client(self, client_id: str) -> list[dict]:
        query = self.client.collection(self.collection).where(filter=FieldFilter("client_id", "==", client_id))
        return sorted((s.to_dict() for s in query.stream()), key=lambda d: d["created_at"])

    # --- the store's rules, over those calls ------------------------------------------------

    @retried("firestore")
    def create(self, client_id: str, url: str, events: list[str]) -> tuple[dict, str]:
        endpoint_id = "wh_" + os.urandom(12).hex()
        secret = signing.new_secret()
        doc = {"id": endpoint_id, "client_id": client_id, "url": url, "events": events, "created_at": utcnow(),
               "secrets": [{"sealed": self._sealed().seal(secret, endpoint_id), "created_at": utcnow()}]}
        self._create(endpoint_id, doc)
        return doc, secret

    @retried("firestore")
    def get(self, endpoint_id: str) -> dict | None:
        return self._read(endpoint_id)[0]

    def owned(self, client_id: str, endpoint_id: str) -> dict | None:
        doc = self.get(endpoint_id)
        return doc if doc is not None and doc["client_id"] == client_id else None

    @retried("firestore")
    def decide(self, endpoint_id: str, decision: Callable[[dict], tuple[T, dict]]) -> T | None:
        """Read, decide, write only if unchanged, else again (as JobStoreBase._decide: no
        read-write transaction). None when the endpoint is gone."""
        for _ in range(CAS_ATTEMPTS):
            doc, version = self._read(endpoint_id)
            if doc is None:
                return None
            result, updates = decision(doc)
            if not updates:
                return result
            try:
                self._write_if(endpoint_id, updates, version)
                return result
            except Conflict:
                time.sleep(random.uniform(0.0, 0.05))
        raise TransientError(f"webhook endpoint {endpoint_id}: still contended after {CAS_ATTEMPTS} compare-and-set attempts")

    @retried("firestore")
    def rotate(self, endpoint_id: str, overlap: dt.timedelta) -> str:
        """A new secret; the ones before stay valid for `overlap` (both signatures are sent)."""
        doc = self.get(endpoint_id) or {}
        now = utcnow()
        secret = signing.new_secret()
        kept = [{**s, "expires_at": s.get("expires_at") or now + overlap} for s in self.live_secrets(doc, now)]
        sealed = {"sealed": self._sealed().seal(secret, endpoint_id), "created_at": now}
        self.update(endpoint_id, {"secrets": [sealed, *kept]})
        return secret

    @staticmethod
    def live_secrets(doc: dict, now: dt.datetime) -> list[dict]:
        return [s for s in doc.get("secrets", []) if not s.get("expires_at") or s["expires_at"] > now]

    def signing_secrets(self, doc: dict) -> list[str]:
        return [self._sealed().open(s["sealed"], doc["id"]) for s in self.live_secrets(doc, utcnow())]

    @retried("firestore")
    def matching(self, client_id: str, event_type: str) -> list[dict]:
        return [d for d in self.for_client(client_id) if event_type in d["events"] and not d.get("disabled")]


def _firestore(updates: dict) -> dict:
    return {k: (firestore.DELETE_FIELD if v is DELETE else v) for k, v in updates.items()}


def public_view(doc: dict) -> dict:
    """What a client sees of its endpoint: never a secret, sealed or not."""
    from ..pipeline.jobstore import to_json

    view = {k: doc.get(k) for k in ("id", "url", "events", "created_at", "disabled", "health", "breaker")}
    view["secrets"] = [{"created_at": s["created_at"], "expires_at": s.get("expires_at")} for s in doc.get("secrets", [])]
    return to_json({k: v for k, v in view.items() if v is not None})


def endpoint_store(settings) -> EndpointStore:
    box = SecretBox(settings.webhook_secrets_key) if settings.webhook_secrets_key else None
    return EndpointStore(settings.project, box)
