"""The job as upload clients see it: `job.v1` (schemas/job.v1.json), never the internal document.

Left out on purpose: bucket and object names, generations, the sweep's `handoff`, the
Idempotency-Key, the owner, internal retry notes. Renditions carry HTTPS URLs: V4 signed GET
URLs valid for RENDITION_URL_TTL_SECONDS, or plain URLs on RENDITIONS_BASE_URL when a CDN
fronts the bucket.
"""
from __future__ import annotations

import datetime as dt

from ..common.errors import HTTPProblem
from ..pipeline import cost
from ..pipeline.events import picture_facts, rendition_name
from ..pipeline.jobstate import STAGES, Job
from ..pipeline.jobstore import to_json
from ..pipeline.runtime import Runtime

SCHEMA = "job.v1"
HIDDEN_RENDITION_FIELDS = ("uri", "generation", "bucket", "name")


def rendition_url(rt: Runtime, ref: dict) -> tuple[str, str | None]:
    """(URL, expiry as RFC 3339 or None) of one stored rendition."""
    bucket, _, name = ref["uri"].removeprefix("gs://").partition("/")
    if rt.settings.renditions_base_url:
        return f"{rt.settings.renditions_base_url}/{name}", None
    url, expires = rt.blobs.signed_get_url(bucket, name, ref.get("generation"), rt.settings.rendition_url_ttl_seconds,
                                           key_file=rt.settings.signing_key_file,
                                           endpoint=rt.settings.storage_read_endpoint)
    return url, to_json({"t": dt.datetime.fromtimestamp(expires, dt.UTC)})["t"]


def _public_file(rt: Runtime, ref: dict) -> dict:
    out = {k: v for k, v in ref.items() if k not in HIDDEN_RENDITION_FIELDS}
    out["name"] = rendition_name(ref["uri"])
    out["url"], expires = rendition_url(rt, ref)
    if expires:
        out["url_expires_at"] = expires
    return out


def _stage(record: dict) -> dict:
    out = {"state": record.get("state", "pending"), "attempts": record.get("attempts", 0)}
    for k in ("started_at", "finished_at"):
        if record.get(k):
            out[k] = record[k]
    if record.get("started_at") and record.get("finished_at"):
        start, end = (dt.datetime.fromisoformat(record[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
        out["duration_ms"] = round((end - start).total_seconds() * 1000)
    return out


def public_job(rt: Runtime, job: Job, with_urls: bool = True) -> dict:
    doc = to_json(job)
    src = doc.get("source") or {}
    status = doc["status"]
    out = {
        "schema": SCHEMA,
        "job_id": doc["job_id"],
        "status": status,
        "kind": doc.get("kind"),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
        "source": {k: src[k] for k in ("content_type", "size", "filename", "sha256") if src.get(k) is not None},
        "stages": {s: _stage((doc.get("stages") or {}).get(s) or {}) for s in STAGES},
    }
    if doc.get("finished_at"):
        out["finished_at"] = doc["finished_at"]
    timings = {k: v for k, v in (doc.get("timings") or {}).items() if k in ("playable_at", "ready_at")}
    if timings:
        out["timings"] = timings
    if doc.get("error"):
        err = doc["error"]
        out["error"] = {k: err.get(k) for k in ("stage", "error_class", "reason")}
    if doc.get("analysis"):
        out["analysis"] = doc["analysis"]
    if with_urls:
        out["renditions"] = [_public_file(rt, r) for r in doc.get("renditions") or []]
        board = doc.get("storyboard")
        if board:
            out["storyboard"] = {**{k: v for k, v in board.items() if k not in ("sprite", "vtt")},
                                 "sprite": _public_file(rt, board["sprite"]), "vtt": _public_file(rt, board["vtt"])}
        if doc.get("video"):
            out["video"] = _public_video(rt, doc["video"])
    if doc.get("skipped"):
        out["skipped"] = doc["skipped"]
    out.update(picture_facts(doc))
    # A final job shows what its event said; a running one what its stages recorded so far.
    out["cost"] = doc.get("cost") or cost.estimate(doc, cost.Prices.of(rt.settings))
    return out


def stored_files(job: Job) -> list[dict]:
    """Every file the job document names (renditions, storyboard, the video's playlists and MP4)."""
    refs = list(job.get("renditions") or [])
    board = job.get("storyboard") or {}
    refs += [board[k] for k in ("sprite", "vtt") if k in board]
    video = job.get("video")
    if video:
        refs += [video["hls"]["master"], video["mp4"], *(r["playlist"] for r in video["ladder"])]
    return refs


def _public_video(rt: Runtime, video: dict) -> dict:
    """The ladder's files. The stored playlists name their media segments relative to
    themselves, so they play as they are only from RENDITIONS_BASE_URL (a CDN or public origin);
    from the private bucket, a player uses the playback URL (playback.py). The MP4 plays from its
    signed URL."""
    out = {k: v for k, v in video.items() if k not in ("hls", "mp4", "ladder")}
    out["hls"] = {**{k: v for k, v in video["hls"].items() if k != "master"}, "master": _public_file(rt, video["hls"]["master"])}
    out["mp4"] = _public_file(rt, video["mp4"])
    out["ladder"] = [{**{k: v for k, v in r.items() if k != "playlist"}, "playlist": _public_file(rt, r["playlist"])}
                     for r in video["ladder"]]
    return out


def find_rendition(rt: Runtime, job: Job, name: str) -> str:
    """A fresh URL of the job's rendition `name`, or a 404."""
    for ref in stored_files(job):
        if rendition_name(ref["uri"]) == name:
            return rendition_url(rt, ref)[0]
    raise HTTPProblem(404, "Rendition not found", f"job {job['job_id']} has no rendition named {name[:100]!r}")
