"""analyze: reads the original, describes it, publishes media-analyzed.

The media work (decode, analysis) runs in a bounded child (services/media/sandbox.py):
the file's headers are checked first (services/media/precheck.py; the door's check, again,
for signed-URL uploads), and their declared memory need is admitted on this instance.
"""
from __future__ import annotations

from functools import partial

from flask import Flask

from ..common.config import Settings
from ..media import precheck, sandbox
from ..media.budget import Budget
from ..pipeline import media_work
from ..pipeline.handon import StageResult
from ..pipeline.jobstate import Job
from ..pipeline.neardup import check_picture
from ..pipeline.push import register_segments, register_stage
from ..pipeline.runtime import Runtime
from ..pipeline.web import create_service_app
from .image import analyze_image
from .video_stage import analyze_segment, handle_video, merge_segments


def handle(rt: Runtime, job: Job, msg: dict) -> StageResult:
    if msg["kind"] == "video":
        return handle_video(rt, job, msg)
    s = rt.settings
    # Start before the download: the whole job must finish well inside the push ack deadline.
    limits = media_work.stage_limits(rt, "analyze")
    budget = Budget(s.stage_time_budget_seconds).sooner(limits.budget("analysis"))
    src = msg["source"]
    raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
    facts = precheck.check(raw, "image", s)
    analysis = media_work.media_work(rt, "analyze", msg["job_id"], partial(analyze_image, max_pixels=s.max_image_pixels,
                                     budget=budget), limits=limits, need_bytes=facts.need_bytes, raw=raw)
    payload = {"job_id": msg["job_id"], "kind": msg["kind"], "source": src, "analysis": analysis}
    # In this process (Firestore), after the child: the client's earlier near-copies, and the upload's on_duplicate.
    duplicate = check_picture(rt.near_duplicates, job, analysis.get("phash"), s.near_duplicate_distance)
    fields = {"analysis": analysis, "placeholders": analysis["placeholders"], **({"duplicate": duplicate} if duplicate else {})}
    return StageResult(publish=[("media-analyzed", payload)], job_fields=fields)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("analyze", settings, runtime)
    register_stage(app, rt, "analyze", handle)
    register_segments(app, rt, "analyze", analyze_segment, merge_segments)
    sandbox.preload(["services.analyze.image", "services.analyze.video_stage"])
    sandbox.warm_up()
    return app
