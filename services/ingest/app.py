"""ingest: accepts uploads, stores the original, creates the job, publishes media-ingested."""
from __future__ import annotations

import base64
import hashlib
import logging

from flask import Flask, jsonify, request

from ..common.config import Settings
from ..common.errors import HTTPProblem
from ..common.logs import bind_fields, log
from ..common.mediatypes import ALLOWED, sniff
from ..common.runtime import Runtime
from ..common.status import to_json, utcnow
from ..common.web import create_service_app

logger = logging.getLogger("mediarelay.ingest")
MAX_IDEMPOTENCY_KEY = 255


def make_job_id(namespace: str, value: str) -> str:
    """Deterministic id: the same Idempotency-Key (or the same bytes) gives the same job."""
    digest = hashlib.sha256(f"{namespace}\0{value}".encode()).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=")[:26]


def create_app(settings: Settings | None = None) -> Flask:
    app, rt = create_service_app("ingest", settings)

    @app.post("/v1/uploads")
    def upload():
        data, filename = _read_upload()
        media = sniff(data[:64])
        if media is None:
            allowed = ", ".join(sorted({m.content_type for m in ALLOWED}))
            raise HTTPProblem(415, "Unsupported media type",
                              f"the file's first bytes match no supported type; supported: {allowed}")
        sha = hashlib.sha256(data).hexdigest()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
            raise HTTPProblem(400, "Bad Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
        job_id = make_job_id("key", key) if key else make_job_id("sha256", sha)
        bind_fields(job_id=job_id)

        job = rt.jobs.get(job_id)
        replayed = job is not None
        if job is None:
            stored = rt.blobs.put_if_absent(rt.settings.originals_bucket, f"originals/{job_id}", data, media.content_type)
            source = {
                "uri": stored.uri, "bucket": stored.bucket, "name": stored.name, "generation": stored.generation,
                "content_type": media.content_type, "size": len(data), "sha256": sha, "filename": filename,
            }
            job, created = rt.jobs.create(job_id, {"kind": media.kind, "source": source, "idempotency_key": key})
            replayed = not created
        if job["source"]["sha256"] != sha:
            raise HTTPProblem(422, "Idempotency-Key reused",
                              "this Idempotency-Key was first used with different content", job_id=job_id)
        if job["status"] == "received":
            # New job, or a client retry of one whose publish may have been lost: (re)publish.
            # Stages are idempotent, so a second media-ingested costs nothing.
            _publish_ingested(rt, job)
        log(logger, logging.INFO, "upload accepted", replayed=replayed, kind=job["kind"], bytes=len(data))
        body = {"job_id": job_id, "status": job["status"], "status_url": _status_url(rt, job_id)}
        resp = jsonify(body)
        resp.status_code = 202
        resp.headers["Location"] = body["status_url"]
        if replayed:
            resp.headers["Idempotent-Replayed"] = "true"
        return resp

    @app.get("/v1/jobs/<job_id>")
    def job_status(job_id: str):
        job = rt.jobs.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise HTTPProblem(404, "Job not found", f"no job with id {job_id!r}")
        return jsonify(public_job(job))

    return app


def _read_upload() -> tuple[bytes, str | None]:
    content_type = request.mimetype or ""
    if content_type == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise HTTPProblem(400, "No file", "multipart upload has no field named 'file'")
        data, filename = part.read(), part.filename or None
    else:
        data = request.get_data(cache=False)
        filename = request.headers.get("X-Filename")
    if not data:
        raise HTTPProblem(400, "Empty upload", "the uploaded file has no bytes")
    return data, filename


def _publish_ingested(rt: Runtime, job: dict) -> None:
    payload = {
        "job_id": job["job_id"],
        "kind": job["kind"],
        "source": job["source"],
        "submitted_at": to_json({"t": job.get("created_at") or utcnow()})["t"],
    }
    rt.bus.publish("media-ingested", payload, job_id=job["job_id"])


def _status_url(rt: Runtime, job_id: str) -> str:
    base = rt.settings.public_base_url or request.host_url.rstrip("/")
    return f"{base}/v1/jobs/{job_id}"


def public_job(job: dict) -> dict:
    """The job document as upload clients see it."""
    doc = to_json(job)
    doc.pop("idempotency_key", None)
    return doc
