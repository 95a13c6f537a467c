"""GCS access: create-if-absent writes (generation precondition 0) and generation-pinned reads."""
from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import storage

from .errors import PermanentError
from .retrying import retried


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    name: str
    generation: str
    size: int
    content_type: str
    created: bool  # False when an earlier attempt had already written it

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class BlobStore:
    def __init__(self, project: str):
        self.project = project
        self._client: storage.Client | None = None

    @property
    def client(self) -> storage.Client:
        # Created lazily: gunicorn forks workers, and clients must not cross a fork.
        if self._client is None:
            self._client = storage.Client(project=self.project)
        return self._client

    @retried
    def put_if_absent(
        self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str | None = None
    ) -> StoredObject:
        blob = self.client.bucket(bucket).blob(name)
        blob.cache_control = cache_control
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
            created = True
        except gexc.PreconditionFailed:
            # Deterministic names: whatever is there was written for this same input.
            blob.reload()
            created = False
        return StoredObject(bucket, name, str(blob.generation), int(blob.size), blob.content_type, created)

    @retried
    def get_bytes(self, bucket: str, name: str, generation: str | None = None) -> bytes:
        blob = self.client.bucket(bucket).blob(name, generation=int(generation) if generation else None)
        try:
            return blob.download_as_bytes()
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None

    @retried
    def stat(self, bucket: str, name: str) -> StoredObject | None:
        blob = self.client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        return StoredObject(bucket, name, str(blob.generation), int(blob.size), blob.content_type, False)
