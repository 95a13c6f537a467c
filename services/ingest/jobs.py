"""Turning a stored original into a job: shared by direct uploads and signed-URL uploads."""
from __future__ import annotations

import base64
import hashlib
import os

from ..common.blobs import StoredObject
from ..common.mediatypes import MediaType
from ..common.messages import ingested_message
from ..common.runtime import Runtime

ORIGINALS_PREFIX = "originals/"


def make_job_id(namespace: str, value: str) -> str:
    """Deterministic id: the same Idempotency-Key (or the same bytes) gives the same job."""
    digest = hashlib.sha256(f"{namespace}\0{value}".encode()).digest()
    return _b32(digest)


def random_job_id() -> str:
    return _b32(os.urandom(16))


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().lower().rstrip("=")[:26]


def source_of(stored: StoredObject, media: MediaType, size: int, sha256: str | None, filename: str | None) -> dict:
    source = {
        "uri": stored.uri, "bucket": stored.bucket, "name": stored.name, "generation": stored.generation,
        "content_type": media.content_type, "size": size, "filename": filename,
    }
    if sha256:
        source["sha256"] = sha256
    return source


def open_job(rt: Runtime, job_id: str, kind: str, source: dict, idempotency_key: str | None) -> tuple[dict, bool]:
    """Create the job (if absent) and hand it to analyze; return (job, created).

    A job still `received` is (re)published: that heals a crash between creating the job and
    publishing, and stages are idempotent, so a second media-ingested costs nothing.
    """
    job, created = rt.jobs.create(job_id, {"kind": kind, "source": source, "idempotency_key": idempotency_key})
    if job["status"] == "received":
        publish_ingested(rt, job)
    return job, created


def publish_ingested(rt: Runtime, job: dict) -> None:
    rt.bus.publish("media-ingested", ingested_message(job), job_id=job["job_id"])
