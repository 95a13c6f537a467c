"""Operators' actions on one job (the CLI's `mediarelay jobs ...` calls these)."""
from __future__ import annotations

import time

from ..common.errors import TransientError
from ..pipeline import events, jobstate
from ..pipeline.handon import public_base_url, publish_final_event
from ..pipeline.jobstate import Job
from ..pipeline.jobstore import to_json, utcnow
from ..pipeline.runtime import Runtime


class NoSuchJob(LookupError):
    pass


def cancel(rt: Runtime, job_id: str, reason: str | None = None) -> dict:
    """End the job `failed` (error class `cancelled`) with its one event. A stage still working
    on it stops at its next check (before an output write, at a budget check, at hand-off) and
    writes nothing more."""
    job = rt.jobs.get(job_id)
    if job is None:
        raise NoSuchJob(job_id)
    if job["status"] in jobstate.FINAL:
        return {"job_id": job_id, "status": job["status"], "action": "none", "note": f"already {job['status']}"}
    stage = jobstate.current_stage(job)
    text = f"cancelled by an operator: {reason}" if reason else "cancelled by an operator"
    published = publish_final_event(rt, job_id, "failed", jobstate.failure_fields(stage, "cancelled", text))
    after = rt.jobs.get(job_id)
    status = after["status"] if after is not None else None
    return {"job_id": job_id, "status": status, "action": "cancelled" if published else "none", "stage": stage}


# --- delete: DELETE /v1/jobs/{id} asks, notify's /push/deletions erases -----------------------------------------
DELETION_TOPIC = "job-deletions"
# What a deleted job's document keeps (its tombstone): enough to answer 410 to its owner, to route
# the `deleted` webhook to the owner's endpoints, and to expire by Firestore TTL. Nothing of the media.
TOMBSTONE_FIELDS = ("job_id", "owner", "status", "kind", "created_at", "updated_at", "finished_at", "final_event", "stages",
                    "expires_at", "deleted", "webhooks")


def request_delete(rt: Runtime, job: Job, who: str) -> dict[str, str]:
    """End the job if it still runs (its one final event: `failed`, `cancelled`), then hand the
    erasure to notify through the `job-deletions` topic: a job's objects can be thousands (HLS
    segments), more than one HTTP request should wait for. Idempotent: asking again republishes."""
    job_id = job["job_id"]
    if job["status"] not in jobstate.FINAL:
        stage = jobstate.current_stage(job)
        publish_final_event(rt, job_id, "failed", jobstate.failure_fields(stage, "cancelled", f"cancelled: deleted by {who}"))
    requested_at = (job.get("deleted") or {}).get("requested_at") or utcnow()
    if not job.get("deleted"):
        rt.jobs.record(job_id, {"deleted.requested_at": requested_at})
    if not (job.get("deleted") or {}).get("published_at"):
        rt.bus.publish(DELETION_TOPIC, {"job_id": job_id, "requested_at": to_json({"t": requested_at})["t"]}, job_id=job_id)
    return {"job_id": job_id, "status": "deleting"}


def delete(rt: Runtime, job_id: str) -> dict[str, str]:
    """An operator's deletion (`mediarelay jobs delete`): the owner's DELETE without the owner check."""
    job = rt.jobs.get(job_id)
    if job is None:
        raise NoSuchJob(job_id)
    return request_delete(rt, job, "an operator")


def job_objects(rt: Runtime, job: Job, incoming_prefix: str) -> list[tuple[str, str]]:
    """(bucket, name or prefix/) of everything a job may have stored: the original (and its upload
    under incoming/), renditions with HLS segments, storyboard and stills, the segments' work files."""
    job_id, s = job["job_id"], rt.settings
    out = [(s.originals_bucket, f"originals/{job_id}"), (s.originals_bucket, f"{incoming_prefix}{job_id}"),
           (s.renditions_bucket, f"renditions/{job_id}/"), (s.renditions_bucket, f"work/{job_id}/")]
    src = job.get("source")
    if src and src.get("bucket") and src.get("name"):
        out.append((src["bucket"], src["name"]))
    return out


def erase(rt: Runtime, job_id: str) -> bool:
    """Erase every object and record of a job whose deletion was asked, leave its tombstone and
    publish its one `deleted` event. Each step is idempotent, so a redelivery finishes the work.
    False when there is nothing (more) to do."""
    job = rt.jobs.get(job_id)
    deletion = job.get("deleted") if job is not None else None
    if job is None or not deletion or deletion.get("published_at"):
        return False
    if job["status"] not in jobstate.FINAL:
        raise TransientError(f"job {job_id} is still {job['status']}: erased once it has ended")
    final = job.get("final_event")
    if not (final and final.get("published")):
        raise TransientError(f"job {job_id}: its final event is not out yet; `deleted` comes after it")
    ended = job.get("finished_at") or job.get("updated_at")
    settle = rt.settings.delete_settle_seconds - (utcnow() - ended).total_seconds() if ended is not None else 0.0
    if settle > 0:
        # A stage cancelled under the deletion may be finishing one output write. Waited here (at most
        # DELETE_SETTLE_SECONDS), not by refusing: Pub/Sub's backoff after a refusal, and its pacing of a
        # push subscription that fails, can delay the erase far longer than the settle itself.
        time.sleep(settle)
    incoming = rt.topology.topics["gcs-uploads"]["gcs_notification"]["object_prefix"]
    for bucket, name in job_objects(rt, job, incoming):
        if name.endswith("/"):
            rt.blobs.delete_prefix(bucket, name)
        else:
            rt.blobs.delete(bucket, name)
    for stage in jobstate.STAGES:
        rt.jobs.delete_segments(job_id, stage)
    if rt.near_duplicates is not None and job.get("owner"):  # never named as the earlier copy of a later upload
        rt.near_duplicates.remove(str(job["owner"]), job_id)
    erased_at = deletion.get("erased_at") or utcnow()  # kept on a redelivery: the event stays identical
    gone = {k: jobstate.DELETE for k in job if k not in TOMBSTONE_FIELDS}
    rt.jobs.record(job_id, {**gone, "deleted.erased_at": erased_at})
    tomb = rt.jobs.get(job_id)
    if tomb is None:
        return False  # removed meanwhile (its TTL): nothing left to announce
    message_id = rt.bus.publish(events.TOPIC, events.deleted_event(tomb, public_base_url(rt)), job_id=job_id)
    rt.jobs.record(job_id, {"deleted.published_at": utcnow(), "deleted.message_id": message_id})
    return True
