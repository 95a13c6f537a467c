"""ingest: accepts uploads, stores the original, creates the job, publishes media-ingested.

Two ways in: `POST /v1/uploads` (body up to MAX_UPLOAD_BYTES, Cloud Run stops HTTP/1 bodies
at 32 MiB) and, for bigger files, `POST /v1/upload-urls` -> a V4 signed PUT URL straight to
GCS under incoming/, whose object-finalize notification reaches the push endpoint below.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re

from flask import Flask, Response, jsonify, request

from ..common import precheck
from ..common.config import Settings
from ..common.errors import BadMessage, HTTPProblem, LimitExceeded, PermanentError, UnsupportedMedia
from ..common.logs import bind_fields, log
from ..common.mediatypes import ALLOWED, sniff
from ..common.runtime import Runtime
from ..common.schemas import validate
from ..common.stage import dead_letter, publish_final_event, read_push
from ..common.status import to_json, utcnow
from ..common.web import create_service_app
from .jobs import ORIGINALS_PREFIX, make_job_id, open_job, publish_ingested, random_job_id, source_of

logger = logging.getLogger("mediarelay.ingest")
MAX_IDEMPOTENCY_KEY = 255
JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{7,63}$")
ALLOWED_TYPES = ", ".join(sorted({m.content_type for m in ALLOWED}))


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("ingest", settings, runtime)
    uploads = rt.topology.subscription_for_service("ingest")
    incoming_prefix = rt.topology.topics[uploads.topic]["gcs_notification"]["object_prefix"]

    @app.post("/v1/uploads")
    def upload():
        data, filename = _read_upload()
        media = sniff(data[:64])
        if media is None:
            raise HTTPProblem(415, "Unsupported media type",
                              f"the file's first bytes match no supported type; supported: {ALLOWED_TYPES}")
        precheck.at_the_door(data, media.kind, rt.settings)  # over a limit from its headers: 413, nothing stored
        sha = hashlib.sha256(data).hexdigest()
        key = _idempotency_key()
        job_id = make_job_id("key", key) if key else make_job_id("sha256", sha)
        bind_fields(job_id=job_id)
        job = rt.jobs.get(job_id)
        if job is None:
            stored = rt.blobs.put_if_absent(rt.settings.originals_bucket, ORIGINALS_PREFIX + job_id, data, media.content_type)
            job, created = open_job(rt, job_id, media.kind, source_of(stored, media, len(data), sha, filename), key)
        else:
            created = False
            if job["status"] == "received":
                publish_ingested(rt, job)
        if job["source"].get("sha256") != sha:
            raise HTTPProblem(422, "Idempotency-Key reused",
                              "this Idempotency-Key was first used with different content", job_id=job_id)
        log(logger, logging.INFO, "upload accepted", replayed=not created, kind=job["kind"], bytes=len(data))
        return _accepted(rt, job, replayed=not created)

    @app.post("/v1/upload-urls")
    def upload_url():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("content_type"), str):
            raise HTTPProblem(400, "Bad request", 'send JSON {"content_type": "video/mp4", "size": 123, "filename": "a.mp4"}')
        content_type = body["content_type"].split(";")[0].strip().lower()
        if content_type not in {m.content_type for m in ALLOWED}:
            raise HTTPProblem(415, "Unsupported media type", f"{content_type!r} is not accepted; supported: {ALLOWED_TYPES}")
        size = body.get("size")
        limit = rt.settings.max_signed_upload_bytes
        if isinstance(size, int) and size > limit:
            raise HTTPProblem(413, "Upload too large", f"{size} bytes is over MAX_SIGNED_UPLOAD_BYTES={limit}")
        key = _idempotency_key()
        job_id = make_job_id("key", key) if key else random_job_id()
        if rt.jobs.get(job_id) is not None:
            raise HTTPProblem(409, "Already uploaded", "an upload with this Idempotency-Key already made a job",
                              job_id=job_id, status_url=_status_url(rt, job_id))
        bucket = rt.settings.originals_bucket
        try:
            url, headers = rt.blobs.signed_put_url(bucket, incoming_prefix + job_id, content_type,
                                                   rt.settings.signed_url_ttl_seconds, limit, rt.settings.signing_key_file,
                                                   _safe_filename(body.get("filename")))
        except Exception as exc:  # no signing credentials is a deployment problem, not a client one
            logger.exception("cannot sign upload URL")
            raise HTTPProblem(503, "Signed uploads unavailable",
                              f"cannot sign URLs ({type(exc).__name__}); set SIGNING_KEY_FILE or grant the runtime "
                              "service account roles/iam.serviceAccountTokenCreator on itself") from None
        expires = utcnow() + dt.timedelta(seconds=rt.settings.signed_url_ttl_seconds)
        resp = jsonify(job_id=job_id, upload_url=url, method="PUT", headers=headers, max_bytes=limit,
                       expires_at=to_json({"t": expires})["t"], status_url=_status_url(rt, job_id))
        resp.status_code = 201
        return resp

    @app.post(uploads.path)
    def upload_finalized():
        """GCS object-finalize notification for incoming/<job_id>: the big-upload path."""
        msg = read_push(rt)
        try:
            validate(rt.settings.schemas_dir, rt.topology.schema_of_topic(uploads.topic), msg.data)
        except BadMessage as exc:
            dead_letter(rt, uploads.dead_letter_topic, "ingest", msg, exc, "")
            return Response(status=204)
        name = msg.data["name"]
        job_id = name[len(incoming_prefix):] if name.startswith(incoming_prefix) else ""
        if msg.attributes.get("eventType", "OBJECT_FINALIZE") != "OBJECT_FINALIZE" or not JOB_ID.match(job_id):
            log(logger, logging.INFO, "notification ignored: not an upload we issued", object=name)
            return Response(status=204)
        bind_fields(job_id=job_id)
        _accept_finalized(rt, msg.data, job_id, incoming_prefix)
        return Response(status=204)

    @app.get("/v1/jobs/<job_id>")
    def job_status(job_id: str):
        job = rt.jobs.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPProblem(404, "Job not found", f"no job with id {job_id!r} (a signed-URL upload becomes a job "
                                                    "once GCS reports the object finalized)")
        return jsonify(public_job(job))

    return app


def _accept_finalized(rt: Runtime, obj: dict, job_id: str, prefix: str) -> None:
    bucket, name, generation, size = obj["bucket"], obj["name"], str(obj["generation"]), int(obj["size"])
    job = rt.jobs.get(job_id)
    if job is not None:  # a redelivered notification
        if job["status"] == "received":
            publish_ingested(rt, job)
        return
    try:
        if size > rt.settings.max_signed_upload_bytes:
            raise LimitExceeded(f"upload is {size} bytes, over MAX_SIGNED_UPLOAD_BYTES={rt.settings.max_signed_upload_bytes}")
        media = sniff(rt.blobs.read_head(bucket, name, generation)) if size else None
        if media is None:
            raise UnsupportedMedia(f"the file's first bytes match no supported type; supported: {ALLOWED_TYPES}")
    except PermanentError as exc:
        # The client is already gone: the job records why it failed, and the failed event says so.
        source = {"uri": f"gs://{bucket}/{name}", "bucket": bucket, "name": name, "generation": generation,
                  "content_type": obj.get("contentType") or "application/octet-stream", "size": size}
        rt.jobs.create(job_id, {"kind": None, "source": source})
        error = {"stage": "ingest", "error_class": exc.error_class, "reason": exc.reason}
        publish_final_event(rt, job_id, "failed", {"error": error})
        log(logger, logging.WARNING, f"signed upload refused: {exc.reason}")
        return
    stored = rt.blobs.copy_if_absent(bucket, name, generation, ORIGINALS_PREFIX + job_id, media.content_type)
    filename = (obj.get("metadata") or {}).get("filename")
    open_job(rt, job_id, media.kind, source_of(stored, media, size, None, filename), None)
    rt.blobs.delete_generation(bucket, name, generation)
    log(logger, logging.INFO, "signed upload accepted", kind=media.kind, bytes=size)


def _read_upload() -> tuple[bytes, str | None]:
    if (request.mimetype or "") == "multipart/form-data":
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


def _safe_filename(name) -> str | None:
    """A display name only (it never becomes an object name): printable ASCII, no paths."""
    if not isinstance(name, str):
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isascii() and c.isprintable())[:200] or None


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise HTTPProblem(400, "Bad Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _accepted(rt: Runtime, job: dict, replayed: bool) -> Response:
    body = {"job_id": job["job_id"], "status": job["status"], "status_url": _status_url(rt, job["job_id"])}
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = body["status_url"]
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _status_url(rt: Runtime, job_id: str) -> str:
    base = rt.settings.public_base_url or request.host_url.rstrip("/")
    return f"{base}/v1/jobs/{job_id}"


def public_job(job: dict) -> dict:
    """The job document as upload clients see it."""
    doc = to_json(job)
    doc.pop("idempotency_key", None)
    return doc
