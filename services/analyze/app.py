"""analyze: reads the original, describes it, publishes media-analyzed."""
from __future__ import annotations

from flask import Flask

from ..common.config import Settings
from ..common.mediatypes import suffix_for
from ..common.runtime import Runtime
from ..common.stage import StageResult, register_stage
from ..common.video import downloaded
from ..common.web import create_service_app
from .budget import Budget
from .image import analyze_image
from .video import analyze_video


def handle(rt: Runtime, job: dict, msg: dict) -> StageResult:
    s = rt.settings
    # Starts before the download: the whole job must finish well inside the push ack deadline.
    budget = Budget(s.stage_time_budget_seconds)
    src = msg["source"]
    if msg["kind"] == "image":
        raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
        analysis = analyze_image(raw, s.max_image_pixels, budget)
    else:
        suffix = suffix_for(src["content_type"])
        with downloaded(rt.blobs, src, suffix) as path:
            analysis = analyze_video(path, suffix, s.max_video_seconds, s.max_video_frames, budget, s.max_video_frame_pixels)
    payload = {"job_id": msg["job_id"], "kind": msg["kind"], "source": src, "analysis": analysis}
    return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": analysis})


def create_app(settings: Settings | None = None) -> Flask:
    app, rt = create_service_app("analyze", settings)
    register_stage(app, rt, "analyze", handle)
    return app
