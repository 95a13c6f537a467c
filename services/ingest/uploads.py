"""The two ways in: a direct upload, and a grant to upload straight to GCS (signed URL)."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

from ..common.errors import HTTPProblem, OverLimit, UnsupportedMedia
from ..common.logs import bind_fields, log
from ..media import precheck
from ..media.mediatypes import ALLOWED, AUDIO_ONLY, audio_only, sniff
from ..pipeline.jobstate import Job
from ..pipeline.jobstore import to_json, utcnow
from ..pipeline.neardup import ON_DUPLICATE
from ..pipeline.runtime import Runtime
from . import grants, quotas
from .body import safe_filename, too_large
from .clients import Client
from .jobs import ORIGINALS_PREFIX, claim_job_id, create_job, publish_ingested, random_job_id, source_of

logger = logging.getLogger("mediarelay.ingest")
ALLOWED_TYPES = ", ".join(sorted({m.content_type for m in ALLOWED}))
KIND_OF = {m.content_type: m.kind for m in ALLOWED}
RESUMABLE_CHUNK = 256 * 1024  # GCS: every chunk but the last is a multiple of this


def unsupported(detail: str) -> HTTPProblem:
    return HTTPProblem(415, "Unsupported media type", f"{detail}; supported: {ALLOWED_TYPES}")


def accept_upload(rt: Runtime, client: Client, data: bytes, filename: str | None,
                  key: str | None, *, on_duplicate: str = "process") -> tuple[Job, bool]:
    """Store the original and open its job, or find the job these bytes (or this
    Idempotency-Key) already made for this client. Returns (job, replayed).

    `on_duplicate=reject`: the door knows a duplicate only when these very bytes made an earlier job (their
    SHA-256, already computed): 409 naming it. A near-duplicate (other bytes, same picture) is found by
    analysis, which decodes the picture anyway in its bounded child, and fails the job with the reason; the
    door decodes nothing (invariant 9: every decode in a bounded child; the door streams 32 MiB bodies)."""
    if not data:
        raise HTTPProblem(400, "Empty upload", "the uploaded file has no bytes")
    media = sniff(data[:64])
    if media is None:
        audio = audio_only(data[:64])
        raise unsupported(f"{AUDIO_ONLY} ({audio})" if audio else "the file's first bytes match no supported type")
    at_the_door(data, media.kind, rt.settings)  # over a limit from its headers: 413, nothing stored
    sha = hashlib.sha256(data).hexdigest()
    job_id, first_sha, _ = claim_job_id(rt, client.client_id, "key" if key else "sha256", key or sha, sha)
    bind_fields(job_id=job_id)
    if first_sha != sha:
        raise HTTPProblem(422, "Idempotency-Key reused",
                          "this Idempotency-Key was first used with different content", job_id=job_id)
    job = rt.jobs.get(job_id)
    if job is not None and on_duplicate == "reject" and not key:
        raise HTTPProblem(409, "Duplicate upload", f"these bytes were already uploaded as job {job_id}, and the upload "
                          "asked on_duplicate=reject", job_id=job_id)
    created = False
    if job is None:
        reservation = quotas.reserve(rt, client, len(data))  # a replay (above) is not a new upload: never refused
        try:
            name = safe_filename(filename, rt.settings.max_filename_chars)
            stored = rt.blobs.put_if_absent(rt.settings.originals_bucket, ORIGINALS_PREFIX + job_id, data,
                                            media.content_type)
            job, created = create_job(rt, job_id, kind=media.kind, source=source_of(stored, media, len(data), sha, name),
                                      idempotency_key=key, owner=client.client_id, on_duplicate=on_duplicate)
        finally:
            if not created:  # failed, or a concurrent request with the same bytes made the job: not this upload's
                quotas.release(rt, reservation)
    if job["status"] == "received":
        publish_ingested(rt, job)
    log(logger, logging.INFO, "upload accepted", replayed=not created, kind=job["kind"], bytes=len(data))
    return job, not created


def grant_upload(rt: Runtime, client: Client, body, key: str | None, incoming_prefix: str, *,
                 origin: str | None = None) -> dict:
    """A V4 signed PUT URL for incoming/<job_id>; the job appears when GCS reports the object.
    `origin`: the allowed browser origin asking (CORS), bound to a resumable session."""
    if not isinstance(body, dict) or not isinstance(body.get("content_type"), str):
        raise HTTPProblem(400, "Bad request", 'send JSON {"content_type": "video/mp4", "size": 123, "filename": "a.mp4"}')
    content_type = body["content_type"].split(";")[0].strip().lower()
    if content_type not in KIND_OF:
        raise unsupported(f"{content_type[:100]!r} is not accepted")
    size = body.get("size")
    if type(size) is not int or size <= 0:  # bool is an int subclass: excluded by the exact type check
        raise HTTPProblem(400, "Bad size", "size must be the file's length in bytes, a positive integer")
    resumable = body.get("resumable", False)
    if type(resumable) is not bool:
        raise HTTPProblem(400, "Bad resumable", "resumable must be true or false")
    on_duplicate = body.get("on_duplicate", "process")
    if on_duplicate not in ON_DUPLICATE:
        raise HTTPProblem(400, "Bad on_duplicate", f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}",
                          parameter="on_duplicate")
    limit, setting = signed_limit(rt.settings, KIND_OF[content_type])
    if size > limit:
        raise too_large(limit, setting, f"{size} bytes")
    if key:
        job_id, _, first = claim_job_id(rt, client.client_id, "key", key, None)
        if not first and rt.jobs.get(job_id) is not None:
            raise HTTPProblem(409, "Already uploaded", "an upload with this Idempotency-Key already made a job",
                              job_id=job_id)
    else:
        job_id = random_job_id()
    bind_fields(job_id=job_id)
    # A grant reserves the upload it allows at its announced size; finalize settles it at the
    # size that arrived, or gives it back if the upload is refused (grants.py).
    reservation = quotas.reserve(rt, client, size)
    try:
        grant = _grant_url(rt, job_id, content_type, size, resumable=resumable, filename=body.get("filename"), client=client,
                           incoming_prefix=incoming_prefix, origin=origin)
        grants.record(rt, job_id, client.client_id, size, reservation, on_duplicate=on_duplicate)
    except BaseException:
        quotas.release(rt, reservation)
        raise
    return grant


def signed_limit(settings, kind: str) -> tuple[int, str]:
    """The most bytes a signed or resumable upload of this kind may have, and its setting's name:
    videos go to MAX_VIDEO_UPLOAD_BYTES (ingest never holds the body, segments read it by ranges),
    images keep MAX_SIGNED_UPLOAD_BYTES (an image is decoded whole)."""
    if kind == "video":
        return settings.max_video_upload_bytes, "MAX_VIDEO_UPLOAD_BYTES"
    return settings.max_signed_upload_bytes, "MAX_SIGNED_UPLOAD_BYTES"


def _grant_url(rt: Runtime, job_id: str, content_type: str, size: int, *, resumable: bool, filename: str | None,
               client: Client, incoming_prefix: str, origin: str | None) -> dict:
    ttl = rt.settings.signed_url_ttl_seconds
    metadata = {"filename": safe_filename(filename, rt.settings.max_filename_chars, ascii_only=True),
                "owner": client.client_id}
    if resumable:
        # GCS answers a session's chunk PUTs with CORS headers only for the Origin the session
        # was created with: a web page's resumable upload needs its origin named here.
        url = rt.blobs.resumable_session(rt.settings.originals_bucket, incoming_prefix + job_id, content_type, size,
                                         metadata, origin=origin)
        # A session URI is valid for a week (GCS's rule): it is the credential; no expiry of ours applies.
        return {"job_id": job_id, "upload_url": url, "method": "PUT", "resumable": True,
                "headers": {"Content-Type": content_type}, "max_bytes": size, "chunk_multiple": RESUMABLE_CHUNK}
    try:
        # The object may be at most the size the client announced: the grant is for that file.
        url, headers = rt.blobs.signed_put_url(rt.settings.originals_bucket, incoming_prefix + job_id, content_type,
                                               ttl_seconds=ttl, max_bytes=size, key_file=rt.settings.signing_key_file,
                                               metadata=metadata)
    except Exception as exc:  # no signing credentials is a deployment problem, not a client one
        logger.exception("cannot sign upload URL")
        raise HTTPProblem(503, "Signed uploads unavailable",
                          f"cannot sign URLs ({type(exc).__name__}); set SIGNING_KEY_FILE or grant the runtime "
                          "service account roles/iam.serviceAccountTokenCreator on itself") from None
    expires = utcnow() + dt.timedelta(seconds=ttl)
    return {"job_id": job_id, "upload_url": url, "method": "PUT", "resumable": False, "headers": headers,
            "max_bytes": size, "expires_at": to_json({"t": expires})["t"]}


def at_the_door(raw: bytes, kind: str, settings) -> precheck.MediaFacts:
    """`precheck.check` for an upload that passes through ingest: the client learns at once (413
    problem+json for a limit; 415 for a video container the probe finds holding only sound)."""
    try:
        return precheck.check(raw, kind, settings)
    except OverLimit as exc:
        raise HTTPProblem(413, "Media over a limit", exc.reason, limit=exc.setting, code=exc.code) from None
    except UnsupportedMedia as exc:
        raise unsupported(exc.reason) from None
