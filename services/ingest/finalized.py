"""The big-upload path's second half: GCS reports `incoming/<job_id>` finalized (its
object-finalize notification, pushed to ingest); the object becomes the job's original.

Registered on the shared push plumbing (services/pipeline/push.py register_push): token,
envelope and schema as for the stages; a refused upload fails its job with its one event and
the notification is dead-lettered with the reason, like any stage's permanent failure.
"""
from __future__ import annotations

import logging
import re

from ..common.errors import LimitExceeded, PermanentError, UnsupportedMedia
from ..common.logs import bind_fields, log
from ..media.mediatypes import ALLOWED, sniff
from ..pipeline.envelope import PushMessage
from ..pipeline.handon import publish_final_event
from ..pipeline.jobstate import failure_fields
from ..pipeline.runtime import Runtime
from ..pipeline.topology import PushSubscription
from .jobs import ORIGINALS_PREFIX, open_job, publish_ingested, source_of

logger = logging.getLogger("mediarelay.ingest")
JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{7,63}$")
ALLOWED_TYPES = ", ".join(sorted({m.content_type for m in ALLOWED}))


def accept_finalized(rt: Runtime, sub: PushSubscription, msg: PushMessage) -> None:
    obj = msg.data
    prefix = rt.topology.topics[sub.topic]["gcs_notification"]["object_prefix"]
    name = obj["name"]
    job_id = name[len(prefix):] if name.startswith(prefix) else ""
    if msg.attributes.get("eventType", "OBJECT_FINALIZE") != "OBJECT_FINALIZE" or not JOB_ID.match(job_id):
        log(logger, logging.INFO, "notification ignored: not an upload we issued", object=name)
        return
    bind_fields(job_id=job_id)
    bucket, generation, size = obj["bucket"], str(obj["generation"]), int(obj["size"])
    owner = (obj.get("metadata") or {}).get("owner")  # a signed header of the grant: the client cannot change it
    job = rt.jobs.get(job_id)
    if job is not None:  # a redelivered notification, or the signed URL used again
        if job["status"] == "received":
            publish_ingested(rt, job)
        rt.blobs.delete_generation(bucket, name, generation)  # a second upload never becomes a job: drop it
        return
    try:
        if size > rt.settings.max_signed_upload_bytes:
            raise LimitExceeded(f"upload is {size} bytes, over MAX_SIGNED_UPLOAD_BYTES={rt.settings.max_signed_upload_bytes}")
        media = sniff(rt.blobs.read_head(bucket, name, generation)) if size else None
        if media is None:
            raise UnsupportedMedia(f"the file's first bytes match no supported type; supported: {ALLOWED_TYPES}")
    except PermanentError as exc:
        # The client is already gone: the job records why it failed, its failed event says so,
        # and the notification goes to the dead letters with the reason (the plumbing does that).
        source = {"uri": f"gs://{bucket}/{name}", "bucket": bucket, "name": name, "generation": generation,
                  "content_type": obj.get("contentType") or "application/octet-stream", "size": size}
        rt.jobs.create(job_id, {"kind": None, "source": source, "owner": owner})
        publish_final_event(rt, job_id, "failed", failure_fields("ingest", exc.error_class, exc.reason))
        rt.blobs.delete_generation(bucket, name, generation)  # refused: nothing of it is kept
        log(logger, logging.WARNING, f"signed upload refused: {exc.reason}")
        raise
    stored = rt.blobs.copy_if_absent(bucket, name, generation, ORIGINALS_PREFIX + job_id, media.content_type)
    filename = (obj.get("metadata") or {}).get("filename")
    open_job(rt, job_id, media.kind, source_of(stored, media, size, None, filename), None, owner)
    rt.blobs.delete_generation(bucket, name, generation)
    log(logger, logging.INFO, "signed upload accepted", kind=media.kind, bytes=size)
