"""The public `media-events` event of a job: its one outcome, for subscribers.

The contract is schemas/media-events.v2.json (stable: fields are only ever added, optional; v2 is v1 plus `video`).
Built from the job document alone, so a re-published event (healing a crash) is identical.
"""
from __future__ import annotations

from .jobstate import Job
from .jobstore import to_json
from .payloads import Event, FailureReason


def build_event(stored: Job) -> Event:
    job = to_json(stored)
    final = job["final_event"]
    event: Event = {
        "id": final["id"],  # <job_id>/<status>: stable, so subscribers can drop a copy
        "type": f"mediarelay.job.{final['status']}",
        "job_id": job["job_id"],
        "status": final["status"],
        "occurred_at": final["claimed_at"],
    }
    if job.get("kind") is not None:
        event["kind"] = job["kind"]
    src = job.get("source") or {}
    event["source"] = {k: src.get(k) for k in ("uri", "content_type", "size", "filename")}
    if final["status"] == "completed":
        event["analysis"] = job.get("analysis") or {}
        event["renditions"] = job.get("renditions") or []
        event["skipped"] = job.get("skipped") or []
        if job.get("storyboard"):
            event["storyboard"] = job["storyboard"]
        if job.get("video"):
            event["video"] = job["video"]
    else:
        unknown: FailureReason = {"stage": "notify", "error_class": "unknown", "reason": "unknown"}
        event["error"] = job.get("error") or unknown
        if job.get("analysis"):
            event["analysis"] = job["analysis"]
    return event
