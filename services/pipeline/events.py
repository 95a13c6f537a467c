"""The public `media-events` event of a job: its one outcome, for subscribers.

The contract is schemas/media-events.v2.json (stable: fields are only ever added, optional; v2 is v1 plus `video`).
Built from the job document alone, so a re-published event (healing a crash) is identical.
"""
from __future__ import annotations

from .jobstore import to_json


def build_event(job: dict) -> dict:
    job = to_json(job)
    final = job["final_event"]
    event = {
        "id": final["id"],  # <job_id>/<status>: stable, so subscribers can drop a copy
        "type": f"mediarelay.job.{final['status']}",
        "job_id": job["job_id"],
        "status": final["status"],
        "occurred_at": final["claimed_at"],
        "kind": job.get("kind"),
    }
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
        event["error"] = job.get("error") or {"stage": "notify", "error_class": "unknown", "reason": "unknown"}
        if job.get("analysis"):
            event["analysis"] = job["analysis"]
    return {k: v for k, v in event.items() if v is not None}
