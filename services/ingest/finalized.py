"""The big-upload path's second half: GCS reports `incoming/<job_id>` finalized (its
object-finalize notification, pushed to ingest); the object becomes the job's original.

Registered on the shared push plumbing (services/pipeline/push.py register_push): token,
envelope and schema as for the stages; a refused upload fails its job with its one event and
the notification is dead-lettered with the reason, like any stage's permanent failure.

The bucket is not trusted alone: the grant recorded at POST /v1/upload-urls (grants.py) says
how many bytes the object may have, and its owner must still be a client in good standing
(a resumable session lives a week, past any revocation). The quota reservation of the grant is
settled here, at the size that arrived, or given back when the upload is refused.
"""
from __future__ import annotations

import logging
import re

from ..common.errors import LimitExceeded, PermanentError, UnsupportedMedia
from ..common.logs import bind_fields, log
from ..media.mediatypes import ALLOWED, AUDIO_ONLY, audio_only, sniff
from ..pipeline.envelope import PushMessage
from ..pipeline.handon import publish_final_event
from ..pipeline.jobstate import failure_fields
from ..pipeline.runtime import Runtime
from ..pipeline.topology import PushSubscription
from . import grants
from .clients import ClientStore, is_token_client
from .jobs import ORIGINALS_PREFIX, open_job, publish_ingested, source_of
from .uploads import signed_limit

logger = logging.getLogger("mediarelay.ingest")
JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{7,63}$")
ALLOWED_TYPES = ", ".join(sorted({m.content_type for m in ALLOWED}))


class ClientRevoked(PermanentError):
    """The upload's client was revoked after its grant: what it sends since is not accepted."""

    error_class = "forbidden"


def accept_finalized(rt: Runtime, sub: PushSubscription, msg: PushMessage, clients: ClientStore) -> None:
    obj = msg.data
    prefix = rt.topology.topics[sub.topic]["gcs_notification"]["object_prefix"]
    name = obj["name"]
    job_id = name[len(prefix):] if name.startswith(prefix) else ""
    if msg.attributes.get("eventType", "OBJECT_FINALIZE") != "OBJECT_FINALIZE" or not JOB_ID.match(job_id):
        log(logger, logging.INFO, "notification ignored: not an upload we issued", object=name)
        return
    bind_fields(job_id=job_id)
    bucket, generation, size = obj["bucket"], str(obj["generation"]), int(obj["size"])
    job = rt.jobs.get(job_id)
    if job is not None:  # a redelivered notification, or the signed URL used again
        if job["status"] == "received":
            publish_ingested(rt, job)
        rt.blobs.delete_generation(bucket, name, generation)  # a second upload never becomes a job: drop it
        return
    grant = grants.find(rt, job_id)
    # The grant says who may upload here and how much. Without one (granted by the version before
    # grants were recorded) the object's owner metadata (a signed header, or set by ingest on a
    # session) and the kind's limit (MAX_SIGNED_UPLOAD_BYTES, MAX_VIDEO_UPLOAD_BYTES) stand in, as they did then.
    owner = grant["owner"] if grant else (obj.get("metadata") or {}).get("owner")
    try:
        _check_owner(clients, owner)
        if grant and size > grant["max_bytes"]:
            raise LimitExceeded(f"the uploaded object is {size} bytes, over the {grant['max_bytes']} bytes its upload "
                                "was granted for (the size announced to POST /v1/upload-urls)")
        head = rt.blobs.read_head(bucket, name, generation) if size else b""
        media = sniff(head) if head else None
        if media is None:
            audio = audio_only(head)
            raise UnsupportedMedia(f"{AUDIO_ONLY} ({audio})" if audio else
                                   f"the file's first bytes match no supported type; supported: {ALLOWED_TYPES}",
                                   code="audio-only" if audio else "error")
        # The kind is the bytes', not the one announced: an image granted as a video keeps the image limit.
        limit, setting = signed_limit(rt.settings, media.kind)
        if size > limit:
            raise LimitExceeded(f"the uploaded {media.kind} is {size} bytes, over {setting}={limit}")
    except PermanentError as exc:
        # The client is already gone: the job records why it failed, its failed event says so,
        # and the notification goes to the dead letters with the reason (the plumbing does that).
        grants.settle(rt, job_id, None)  # a refused upload counts against no quota
        source = {"uri": f"gs://{bucket}/{name}", "bucket": bucket, "name": name, "generation": generation,
                  "content_type": obj.get("contentType") or "application/octet-stream", "size": size}
        rt.jobs.create(job_id, {"kind": None, "source": source, "owner": owner})
        publish_final_event(rt, job_id, "failed", failure_fields("ingest", exc.error_class, exc.reason))
        rt.blobs.delete_generation(bucket, name, generation)  # refused: nothing of it is kept
        log(logger, logging.WARNING, f"signed upload refused: {exc.reason}")
        raise
    grants.settle(rt, job_id, size)  # counted at the size that arrived, not the size announced
    stored = rt.blobs.copy_if_absent(bucket, name, generation, ORIGINALS_PREFIX + job_id, media.content_type)
    filename = (obj.get("metadata") or {}).get("filename")
    open_job(rt, job_id, kind=media.kind, source=source_of(stored, media, size, None, filename), idempotency_key=None,
             owner=owner, on_duplicate=(grant or {}).get("on_duplicate") or "process")
    rt.blobs.delete_generation(bucket, name, generation)
    log(logger, logging.INFO, "signed upload accepted", kind=media.kind, bytes=size)


def _check_owner(clients: ClientStore, owner: str | None) -> None:
    """The owner must still be a client in good standing now, not only when it was granted: read
    afresh (not the API key cache), one read per big upload."""
    if owner is None or is_token_client(owner):
        return  # no client document to look at: ID-token clients are managed by their issuer
    doc = clients.current(owner)
    if doc is None or doc.get("revoked_at"):
        raise ClientRevoked(f"client {owner} was revoked after this upload was granted; the upload is not accepted "
                            "and nothing of it is kept")
