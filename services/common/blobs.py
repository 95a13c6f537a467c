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

    @retried("storage")
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

    @retried("storage")
    def get_bytes(self, bucket: str, name: str, generation: str | None = None) -> bytes:
        blob = self.client.bucket(bucket).blob(name, generation=int(generation) if generation else None)
        try:
            return blob.download_as_bytes()
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None

    @retried("storage")
    def download_to(self, bucket: str, name: str, generation: str | None, fileobj) -> None:
        """Stream the object into an open binary file (emptied first, so a retried call starts over)."""
        fileobj.seek(0)
        fileobj.truncate()
        blob = self.client.bucket(bucket).blob(name, generation=int(generation) if generation else None)
        try:
            blob.download_to_file(fileobj)
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None
        fileobj.flush()

    @retried("storage")
    def stat(self, bucket: str, name: str) -> StoredObject | None:
        blob = self.client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        return StoredObject(bucket, name, str(blob.generation), int(blob.size), blob.content_type, False)

    @retried("storage")
    def read_head(self, bucket: str, name: str, generation: str, size: int = 64) -> bytes:
        """The first bytes of an object (a ranged read), for type sniffing without a download."""
        blob = self.client.bucket(bucket).blob(name, generation=int(generation))
        try:
            return blob.download_as_bytes(start=0, end=size - 1)
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None

    @retried("storage")
    def copy_if_absent(self, bucket: str, name: str, generation: str, new_name: str, content_type: str) -> StoredObject:
        """Server-side copy of one generation to `new_name`, unless an earlier attempt made it."""
        src_bucket = self.client.bucket(bucket)
        src = src_bucket.blob(name, generation=int(generation))
        try:
            copied = src_bucket.copy_blob(src, src_bucket, new_name, source_generation=int(generation),
                                          if_generation_match=0)
            created = True
        except gexc.PreconditionFailed:
            copied, created = src_bucket.get_blob(new_name), False
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None
        if created and copied.content_type != content_type:
            copied.content_type = content_type
            copied.patch()
        return StoredObject(bucket, new_name, str(copied.generation), int(copied.size), content_type, created)

    @retried("storage")
    def delete_generation(self, bucket: str, name: str, generation: str) -> None:
        try:
            self.client.bucket(bucket).blob(name).delete(if_generation_match=int(generation))
        except (gexc.NotFound, gexc.PreconditionFailed):
            pass  # already gone, or replaced by a newer upload that is not ours to delete

    def signed_put_url(self, bucket: str, name: str, content_type: str, ttl_seconds: int, max_bytes: int,
                       key_file: str = "", filename: str | None = None) -> tuple[str, dict]:
        """A V4 signed PUT URL and the headers the client must send with it.

        Signs with `key_file` when given, else through IAM signBlob as the runtime service
        account (Cloud Run has no key file; the account needs TokenCreator on itself).
        """
        import datetime as dt

        import google.auth
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        headers = {"Content-Type": content_type, "x-goog-content-length-range": f"0,{max_bytes}"}
        if filename:
            headers["x-goog-meta-filename"] = filename
        blob = self.client.bucket(bucket).blob(name)
        # generate_signed_url adds Host to the dict it is given: hand it a copy.
        kwargs = {"version": "v4", "method": "PUT", "expiration": dt.timedelta(seconds=ttl_seconds), "headers": dict(headers)}
        if key_file:
            kwargs["credentials"] = service_account.Credentials.from_service_account_file(key_file)
        else:
            creds, _ = google.auth.default()
            creds.refresh(Request())
            kwargs.update(service_account_email=creds.service_account_email, access_token=creds.token)
        return blob.generate_signed_url(**kwargs), headers
