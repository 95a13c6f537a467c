"""Sharded counters (DESIGN §4): no hot document.

A counter is a document with N shard documents under it; an increment writes one shard
picked at random (Firestore sustains about one write per second per document), a read sums
the shards in one query.
"""
from __future__ import annotations

import random
from typing import Any

from google.cloud import firestore

from .retrying import retried


class ShardedCounters:
    def __init__(self, db: firestore.Client, collection: str, shards: int):
        self.db = db
        self.collection = collection
        self.shards = shards

    @retried("firestore")
    def add(self, counter_id: str, fields: dict[str, Any], values: dict[str, int]) -> None:
        """Add `values` ({name: n}) to the counter; `fields` are stored on it for queries."""
        parent = self.db.collection(self.collection).document(counter_id)
        shard = parent.collection("shards").document(str(random.randrange(self.shards)))
        batch = self.db.batch()
        batch.set(parent, fields, merge=True)
        batch.set(shard, {k: firestore.Increment(v) for k, v in values.items()}, merge=True)
        batch.commit()

    @retried("firestore")
    def total(self, counter_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for snap in self.db.collection(self.collection).document(counter_id).collection("shards").stream():
            for k, v in (snap.to_dict() or {}).items():
                out[k] = out.get(k, 0) + v
        return out

    @retried("firestore")
    def find(self, **equal: Any) -> list[dict[str, Any]]:
        """The counters' own fields, for those whose fields equal `equal`."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.db.collection(self.collection)
        for k, v in equal.items():
            query = query.where(filter=FieldFilter(k, "==", v))
        return [{"id": s.id, **s.to_dict()} for s in query.stream()]
