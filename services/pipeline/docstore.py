"""A store kept in one Firestore collection (jobs, clients, webhook endpoints)."""
from __future__ import annotations

from google.cloud import firestore


class FirestoreCollection:
    collection: str  # the collection's name, set by each store

    def __init__(self, project: str):
        self.project = project
        self._client: firestore.Client | None = None

    @property
    def client(self) -> firestore.Client:
        if self._client is None:  # lazily: gunicorn forks workers, and clients must not cross a fork
            self._client = firestore.Client(project=self.project)
        return self._client

    def _ref(self, doc_id: str) -> firestore.DocumentReference:
        return self.client.collection(self.collection).document(doc_id)
