"""The public `media-events` events of a job, for subscribers and (the same body) webhooks.

The contract is schemas/media-events.v3.json: one final event per job (`completed`/`failed`) and
lifecycle events beside it (`playable`, `deleted`). Everything v3 names is an HTTPS link to our API that a
consumer follows with its own credential, never a bucket, object path or `gs://` URI (those
stay on internal topics). For one release the v2 body (with `gs://` URIs) is also published,
on its own topic `media-events-v2` (ARCHITECTURE.md invariant 13; why a topic: docs/api.md).
Built from the job document alone, so a re-published event (healing a crash) is identical.
"""
from __future__ import annotations

from typing import Any

from .jobstate import Job
from .jobstore import to_json
from .payloads import Event, EventV2, FailureReason

TOPIC = "media-events"
PREVIOUS_TOPIC = "media-events-v2"  # the v2 body, for one release after v3 (then dropped)
HIDDEN_FILE_FIELDS = ("uri", "generation", "bucket", "name")  # where it is stored: internal
UNKNOWN: FailureReason = {"stage": "notify", "error_class": "unknown", "reason": "unknown"}


def rendition_name(uri: str) -> str:
    """gs://b/renditions/<job>/thumb-256.webp -> thumb-256.webp, .../hls/720p/index.m3u8 -> hls/720p/index.m3u8:
    the path under the job's folder, unique within a job (the `{name}` of /v1/jobs/{id}/renditions/{name})."""
    return uri.removeprefix("gs://").split("/", 3)[-1]


def job_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/v1/jobs/{job_id}"


def build_event(stored: Job, base_url: str, cost: dict[str, Any] | None = None) -> Event:
    """The v3 final event. `base_url` is PUBLIC_BASE_URL (the API's public origin); `cost` the
    job's estimate (services/pipeline/cost.py), priced by the publishing service's settings."""
    job = to_json(stored)
    final = job["final_event"]
    event = _head(job, final["id"], final["status"], final["claimed_at"], base_url)
    if cost is not None:
        event["cost"] = cost
    src = job.get("source") or {}
    event["source"] = {k: src.get(k) for k in ("content_type", "size", "filename")}
    files = _Files(base_url, job["job_id"])
    if final["status"] == "completed":
        event["analysis"] = job.get("analysis") or {}
        event["renditions"] = [files.ref(r) for r in job.get("renditions") or []]
        event["skipped"] = job.get("skipped") or []
        event.update(picture_facts(job))  # type: ignore[typeddict-item]
        board = job.get("storyboard")
        if board:
            event["storyboard"] = {**board, "sprite": files.ref(board["sprite"]), "vtt": files.ref(board["vtt"])}
        video = job.get("video")
        if video:
            event["video"] = {**video, "hls": {**video["hls"], "master": files.ref(video["hls"]["master"])},
                              "mp4": files.ref(video["mp4"]),
                              "ladder": [{**r, "playlist": files.ref(r["playlist"])} for r in video["ladder"]]}
            event["links"]["playback"] = f"{job_url(base_url, job['job_id'])}/playback"
    else:
        event["error"] = job.get("error") or UNKNOWN
        if job.get("analysis"):
            event["analysis"] = job["analysis"]
    return event


def picture_facts(job: dict[str, Any]) -> dict[str, Any]:
    """Placeholders and the near-duplicate found at upload, as the job view and the v3 event show them."""
    out: dict[str, Any] = {}
    if job.get("placeholders"):
        out["placeholders"] = job["placeholders"]
    dup = job.get("duplicate")
    if dup:
        out.update(duplicate_of=dup["of"], distance=dup["distance"], duplicate_action=dup["action"])
    return out


def deleted_event(stored: Job, base_url: str) -> Event:
    """The `deleted` lifecycle event: the job's objects and records are gone (its tombstone remains)."""
    job = to_json(stored)
    return _head(job, f"{job['job_id']}/deleted", "deleted", job["deleted"]["erased_at"], base_url)


def playable_event(stored: Job, base_url: str) -> Event:
    """The `playable` lifecycle event: the first media segments of every rung are written, so the
    ladder plays now (a growing playlist) from a playback URL minted at `links.playback`."""
    job = to_json(stored)
    event = _head(job, f"{job['job_id']}/playable", "playable", job["timings"]["playable_at"], base_url)
    event["links"]["playback"] = f"{job_url(base_url, job['job_id'])}/playback"
    return event


def _head(job: dict[str, Any], event_id: str, status: Any, at: str, base_url: str) -> Event:
    event: Event = {
        "id": event_id,  # <job_id>/<status>: stable, so subscribers can drop a copy
        "type": f"mediarelay.job.{status}",
        "job_id": job["job_id"],
        "status": status,
        "occurred_at": at,
        "links": {"job": job_url(base_url, job["job_id"])},
    }
    if job.get("kind") is not None:
        event["kind"] = job["kind"]
    return event


class _Files:
    def __init__(self, base_url: str, job_id: str):
        self.prefix = f"{job_url(base_url, job_id)}/renditions/"

    def ref(self, ref: dict[str, Any]) -> dict[str, Any]:
        """A stored file as a consumer sees it: its name in the job and our URL for it (no bucket, no generation)."""
        name = rendition_name(ref["uri"])
        out = {k: v for k, v in ref.items() if k not in HIDDEN_FILE_FIELDS}
        return {**out, "name": name, "url": self.prefix + name}


def build_event_v2(stored: Job) -> EventV2:
    """The v2 body (schemas/media-events.v2.json, `gs://` URIs): published on PREVIOUS_TOPIC for one release."""
    job = to_json(stored)
    final = job["final_event"]
    event: EventV2 = {
        "id": final["id"],
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
        event["error"] = job.get("error") or UNKNOWN
        if job.get("analysis"):
            event["analysis"] = job["analysis"]
    return event
