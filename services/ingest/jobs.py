"""Turning a stored original into a job: shared by direct uploads and signed-URL uploads."""
from __future__ import annotations

import base64
import hashlib
import os

from google.api_core import exceptions as gexc

from ..media.mediatypes import MediaType
from ..pipeline.blobs import StoredObject
from ..pipeline.jobstate import Job
from ..pipeline.jobstore import firestore_of, utcnow
from ..pipeline.messages import ingested_message
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime

ORIGINALS_PREFIX = "originals/"


JOB_KEYS = "job_keys"  # Firestore: (client, Idempotency-Key or content hash) -> job id


def random_job_id() -> str:
    """128 random bits: a job id says nothing about the file and cannot be guessed."""
    return _b32(os.urandom(16))


@retried("firestore")
def claim_job_id(rt: Runtime, owner: str, namespace: str, value: str, sha256: str | None) -> tuple[str, str | None, bool]:
    """The job id for (owner, Idempotency-Key or content hash): a fresh random one the first
    time, the same one afterwards. Returns (job_id, sha256 first recorded, first time).

    Per client: one client's key or bytes never lead to another client's job. The first
    create wins a race; the loser reads the winner's id.
    """
    digest = hashlib.sha256(f"{owner}\0{namespace}\0{value}".encode()).hexdigest()
    ref = firestore_of(rt.jobs).collection(JOB_KEYS).document(digest)
    job_id = random_job_id()
    try:
        ref.create({"job_id": job_id, "owner": owner, "sha256": sha256, "expires_at": utcnow() + rt.jobs.ttl})
        return job_id, sha256, True
    except gexc.AlreadyExists:
        doc = ref.get().to_dict()
        return doc["job_id"], doc.get("sha256"), False


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


def open_job(rt: Runtime, job_id: str, *, kind: str, source: dict, idempotency_key: str | None,
             owner: str | None = None, on_duplicate: str = "process") -> tuple[Job, bool]:
    """Create the job (if absent) and hand it to analyze; return (job, created).

    A job still `received` is (re)published: that heals a crash between creating the job and
    publishing, and stages are idempotent, so a second media-ingested costs nothing.
    """
    job, created = create_job(rt, job_id, kind=kind, source=source, idempotency_key=idempotency_key, owner=owner,
                              on_duplicate=on_duplicate)
    if job["status"] == "received":
        publish_ingested(rt, job)
    return job, created


def create_job(rt: Runtime, job_id: str, *, kind: str, source: dict, idempotency_key: str | None,
               owner: str | None, on_duplicate: str = "process") -> tuple[Job, bool]:
    """The job document (if absent), not yet handed on; returns (job, created)."""
    extra = {"on_duplicate": on_duplicate} if on_duplicate != "process" else {}  # absent: process (neardup.py)
    return rt.jobs.create(job_id, {"kind": kind, "source": source, "idempotency_key": idempotency_key, "owner": owner,
                                   **extra})


def publish_ingested(rt: Runtime, job: Job) -> None:
    rt.bus.publish("media-ingested", ingested_message(job), job_id=job["job_id"])
