"""GCS access: create-if-absent writes (generation precondition 0) and generation-pinned reads."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from google.api_core import exceptions as gexc
from google.cloud import storage

from ..common.errors import PermanentError
from ..media.rangefile import SeekableRaw
from . import usage
from .retrying import retried, unavailable


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


def _md5(data: bytes | Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    if isinstance(data, Path):
        with data.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    else:
        h.update(data)
    return base64.b64encode(h.digest()).decode()


class BlobStore:
    def __init__(self, project: str):
        self.project = project
        self._client: storage.Client | None = None
        self._signer: tuple[str, Any] | None = None  # (key file, credentials)
        self._signer_lock = threading.Lock()
        self._signed_gets: dict[tuple[str, str, str | None, int, str], tuple[float, str]] = {}
        # Signatures made by this process (each one an IAM signBlob call on Cloud Run).
        self.signatures = 0

    @property
    def client(self) -> storage.Client:
        # Created lazily: gunicorn forks workers, and clients must not cross a fork.
        if self._client is None:
            self._client = storage.Client(project=self.project)
        return self._client

    @retried("storage")
    def put_if_absent(
        self, bucket: str, name: str, data: bytes | Path, content_type: str, cache_control: str | None = None
    ) -> StoredObject:
        """Write `data` (bytes, or a file streamed from its path) unless the object already holds
        exactly these bytes (then adopt it).

        An object with other bytes under the name (left by an expired job whose id came back,
        or an older encoder) is never adopted: it is replaced, guarded by its generation.
        """
        blob = self.client.bucket(bucket).blob(name)
        blob.cache_control = cache_control
        match = 0
        for _ in range(3):
            try:
                if isinstance(data, Path):
                    blob.upload_from_filename(str(data), content_type=content_type, if_generation_match=match)
                else:
                    blob.upload_from_string(data, content_type=content_type, if_generation_match=match)
                usage.wrote(name, int(blob.size))
                return StoredObject(bucket, name, str(blob.generation), int(blob.size), blob.content_type, True)
            except gexc.PreconditionFailed:
                existing = self.client.bucket(bucket).get_blob(name)
                if existing is None:
                    match = 0
                    continue
                if existing.md5_hash == _md5(data):
                    return StoredObject(bucket, name, str(existing.generation), int(existing.size),
                                        existing.content_type, False)
                match = existing.generation
        raise unavailable(f"gs://{bucket}/{name}: kept changing while being written")

    @retried("storage")
    def get_bytes(self, bucket: str, name: str, generation: str | None = None) -> bytes:
        blob = self.client.bucket(bucket).blob(name, generation=int(generation) if generation else None)
        try:
            return cast(bytes, blob.download_as_bytes())
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None

    @retried("storage")
    def find_bytes(self, bucket: str, name: str) -> bytes | None:
        """The object's bytes, or None when there is none (an output not written yet)."""
        try:
            return cast(bytes, self.client.bucket(bucket).blob(name).download_as_bytes())
        except gexc.NotFound:
            return None

    @retried("storage")
    def download_to(self, bucket: str, name: str, generation: str | None, fileobj: IO[bytes]) -> None:
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
    def open_ranged(self, bucket: str, name: str, generation: str | None, block_bytes: int,
                    blocks: int) -> tuple[RangedObject, int]:
        """(a seekable binary file object over one generation of the object, its size): reads are
        served from ranged GETs of `block_bytes`-aligned blocks, the last `blocks` of them kept;
        nothing is downloaded whole."""
        blob = self.client.bucket(bucket).blob(name, generation=int(generation) if generation else None)
        try:
            blob.reload()
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None
        size = int(blob.size or 0)
        return RangedObject(lambda start, n: self.read_range(blob, start, n), size, block_bytes, blocks), size

    @retried("storage")
    def read_range(self, blob: storage.Blob, start: int, size: int) -> bytes:
        try:
            return cast(bytes, blob.download_as_bytes(start=start, end=start + size - 1, checksum=None))
        except gexc.NotFound:
            raise PermanentError(f"gs://{blob.bucket.name}/{blob.name}#{blob.generation} no longer exists",
                                 code="source-missing") from None

    @retried("storage")
    def read_head(self, bucket: str, name: str, generation: str, size: int = 64) -> bytes:
        """The first bytes of an object (a ranged read), for type sniffing without a download."""
        blob = self.client.bucket(bucket).blob(name, generation=int(generation))
        try:
            return cast(bytes, blob.download_as_bytes(start=0, end=size - 1))
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
            source = src_bucket.get_blob(name, generation=int(generation))
            if copied is not None and source is not None and copied.md5_hash != source.md5_hash:
                # Not what an earlier attempt copied: an old object under this name. Replace it.
                copied = src_bucket.copy_blob(src, src_bucket, new_name, source_generation=int(generation),
                                              if_generation_match=copied.generation)
                created = True
        except gexc.NotFound:
            raise PermanentError(f"gs://{bucket}/{name}#{generation} no longer exists", code="source-missing") from None
        if created and copied.content_type != content_type:
            copied.content_type = content_type
            copied.patch()
        return StoredObject(bucket, new_name, str(copied.generation), int(copied.size), content_type, created)

    @retried("storage")
    def try_create(self, bucket: str, name: str, data: bytes = b"") -> str | None:
        """Create the object only if there is none (a lease): its generation, or None when it exists."""
        blob = self.client.bucket(bucket).blob(name)
        try:
            blob.upload_from_string(data, content_type="application/octet-stream", if_generation_match=0)
        except gexc.PreconditionFailed:
            return None
        return str(blob.generation)

    @retried("storage")
    def created(self, bucket: str, name: str) -> tuple[str, float] | None:
        """(generation, creation time in epoch seconds) of the object, or None when there is none."""
        blob = self.client.bucket(bucket).get_blob(name)
        if blob is None or blob.time_created is None:
            return None
        return str(blob.generation), blob.time_created.timestamp()

    @retried("storage")
    def delete_generation(self, bucket: str, name: str, generation: str) -> None:
        try:
            self.client.bucket(bucket).blob(name).delete(if_generation_match=int(generation))
        except (gexc.NotFound, gexc.PreconditionFailed):
            pass  # already gone, or replaced by a newer upload that is not ours to delete

    def _signing_kwargs(self, key_file: str) -> dict[str, Any]:
        """How to sign V4 URLs: with `key_file`, else through IAM signBlob as the runtime
        service account (Cloud Run has no key file; the account needs TokenCreator on itself).
        Credentials are kept and refreshed only when their token expires."""
        import google.auth
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        with self._signer_lock:
            if self._signer is None or self._signer[0] != key_file:
                from_file = cast(Callable[[str], Any], service_account.Credentials.from_service_account_file)  # untyped
                creds = from_file(key_file) if key_file else google.auth.default()[0]
                self._signer = (key_file, creds)
            creds = self._signer[1]
            if key_file:
                return {"credentials": creds}
            if not creds.valid:
                creds.refresh(Request())
            return {"service_account_email": creds.service_account_email, "access_token": creds.token}

    def signed_put_url(self, bucket: str, name: str, content_type: str, *, ttl_seconds: int, max_bytes: int,
                       key_file: str = "", metadata: dict[str, str | None] | None = None) -> tuple[str, dict[str, str]]:
        """A V4 signed PUT URL and the headers the client must send with it.

        `metadata` becomes x-goog-meta-* headers; they are signed, so the client cannot change them.
        """
        headers = {"Content-Type": content_type, "x-goog-content-length-range": f"0,{max_bytes}"}
        for key, value in (metadata or {}).items():
            if value:
                headers[f"x-goog-meta-{key}"] = value
        blob = self.client.bucket(bucket).blob(name)
        # generate_signed_url adds Host to the dict it is given: hand it a copy.
        self.signatures += 1
        url: str = blob.generate_signed_url(version="v4", method="PUT", expiration=dt.timedelta(seconds=ttl_seconds),
                                            headers=dict(headers), **self._signing_kwargs(key_file))
        return url, headers

    def signed_get_url(self, bucket: str, name: str, generation: str | None, ttl_seconds: int, *,
                       key_file: str = "", endpoint: str = "") -> tuple[str, float]:
        """A V4 signed GET URL of one object and when it expires (epoch seconds), on `endpoint`
        (STORAGE_READ_ENDPOINT; empty = the client's).

        One URL is handed out again while more than half its life is left: a status poll does
        not cost a signBlob call per rendition."""
        key = (bucket, name, generation, ttl_seconds, endpoint)
        now = time.time()
        hit = self._signed_gets.get(key)
        if hit and hit[0] - now > ttl_seconds / 2:
            return hit[1], hit[0]
        blob = self.client.bucket(bucket).blob(name)
        self.signatures += 1
        url: str = blob.generate_signed_url(version="v4", method="GET", expiration=dt.timedelta(seconds=ttl_seconds),
                                            api_access_endpoint=endpoint or None, **self._signing_kwargs(key_file))
        if len(self._signed_gets) > 50_000:
            self._signed_gets.clear()
        self._signed_gets[key] = (now + ttl_seconds, url)
        return url, now + ttl_seconds

    def signed_get_url_until(self, bucket: str, name: str, expires_at: int, key_file: str = "",
                             endpoint: str = "") -> str:
        """A V4 signed GET URL of one object valid until `expires_at` (epoch seconds), uncached."""
        blob = self.client.bucket(bucket).blob(name)
        self.signatures += 1
        url: str = blob.generate_signed_url(version="v4", method="GET", expiration=dt.datetime.fromtimestamp(expires_at, dt.UTC),
                                            api_access_endpoint=endpoint or None, **self._signing_kwargs(key_file))
        return url

    @retried("storage")
    def resumable_session(self, bucket: str, name: str, content_type: str, size: int, metadata: dict[str, str | None],
                          *, origin: str | None = None) -> str:
        """A GCS resumable upload session for one object of exactly `size` bytes and this type,
        created here with ingest's credentials: the session URI is all the client gets, and
        GCS refuses any other total size (X-Upload-Content-Length)."""
        blob = self.client.bucket(bucket).blob(name)
        blob.metadata = {k: v for k, v in metadata.items() if v}
        return cast(str, blob.create_resumable_upload_session(content_type=content_type, size=size, origin=origin))

    @retried("storage")
    def delete(self, bucket: str, name: str) -> None:
        try:
            self.client.bucket(bucket).blob(name).delete()
        except gexc.NotFound:
            pass

    @retried("storage")
    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix` (work files of a fan-out once it fanned in)."""
        names = [b.name for b in self.client.list_blobs(bucket, prefix=prefix)]
        for name in names:
            try:
                self.client.bucket(bucket).blob(name).delete()
            except gexc.NotFound:
                pass
        return len(names)


class RangedObject(SeekableRaw):
    """A stored object read by blocks: each block one ranged GET (retried like every storage call;
    the generation pinned, so a replaced object is never read half old, half new), the most
    recently used `blocks` kept. FFmpeg jumps between the index, the video and the audio of a
    file, and a file whose streams are badly interleaved would otherwise fetch a block per jump."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, block_bytes: int, blocks: int):
        self.fetch, self.size, self.block_bytes, self.blocks = fetch, size, block_bytes, max(1, blocks)
        self.pos = 0
        self.fetched = 0  # bytes fetched from storage
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def _block(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is None:
            start = index * self.block_bytes
            data = self.fetch(start, min(self.block_bytes, self.size - start))
            self.fetched += len(data)
            self._cache[index] = data
            if len(self._cache) > self.blocks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return data

    def readinto(self, buffer: Any) -> int:  # a writable buffer (memoryview, bytearray)
        want = min(len(buffer), self.size - self.pos)
        done = 0
        while done < want:
            index, offset = divmod(self.pos, self.block_bytes)
            chunk = self._block(index)[offset:offset + want - done]
            if not chunk:
                break
            buffer[done:done + len(chunk)] = chunk
            done += len(chunk)
            self.pos += len(chunk)
        return done
