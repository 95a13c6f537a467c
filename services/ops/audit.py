"""The operators' audit log: who did what, when, to what, and what came of it.

One Firestore document per action in `audit_log` (never updated), written by every operator
action (services/ops/actions.py) whether it came from the console, its API or the CLI. The
console lists the newest first (a single-field index on `at`, automatic)."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from google.cloud import firestore

from ..pipeline.docstore import FirestoreCollection
from ..pipeline.jobstore import to_json, utcnow
from ..pipeline.retrying import retried

AUDIT_LOG = "audit_log"
KEEP = dt.timedelta(days=400)  # past a year of incidents; its Firestore TTL (terraform/firestore.tf) removes older ones


class AuditLog(FirestoreCollection):
    collection = AUDIT_LOG

    @retried("firestore")
    def record(self, operator: str, action: str, target: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        entry_id = uuid.uuid4().hex
        entry = {"id": entry_id, "at": now, "operator": operator, "action": action,
                 "target": to_json(target), "outcome": to_json(outcome), "expires_at": now + KEEP}
        self._ref(entry_id).create(entry)  # an id of its own: two actions in one instant are two entries
        return entry

    @retried("firestore")
    def recent(self, limit: int = 50, action_prefix: str | None = None) -> list[dict[str, Any]]:
        query = self.client.collection(AUDIT_LOG).order_by("at", direction=firestore.Query.DESCENDING).limit(limit)
        rows = [s.to_dict() or {} for s in query.stream()]
        return [r for r in rows if action_prefix is None or str(r.get("action", "")).startswith(action_prefix)]
