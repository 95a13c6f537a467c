"""analyze: reads the original, describes it, publishes media-analyzed.

The media work (decode, analysis) runs in a bounded child (services/common/sandbox.py):
the file's headers are checked first (services/common/precheck.py; the door's check, again,
for signed-URL uploads), and their declared memory need is admitted on this instance.
"""
from __future__ import annotations

from flask import Flask

from ..common import precheck, sandbox
from ..common.config import Settings
from ..common.mediatypes import suffix_for
from ..common.runtime import Runtime
from ..common.stage import StageResult, register_stage
from ..common.video import downloaded
from ..common.web import create_service_app
from .budget import Budget
from .image import analyze_image
from .video import analyze_video


def _video_file(_raw: bytes, path: str, *args) -> dict:
    """analyze_video in the bounded child, on the downloaded file."""
    return analyze_video(path, *args)


def handle(rt: Runtime, job: dict, msg: dict) -> StageResult:
    s = rt.settings
    # Start before the download: the whole job must finish well inside the push ack deadline.
    limits = sandbox.stage_limits(rt, "analyze")
    budget = Budget(s.stage_time_budget_seconds).sooner(limits.budget("analysis"))
    src = msg["source"]
    if msg["kind"] == "image":
        raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
        facts = precheck.check(raw, "image", s)
        analysis = sandbox.media_work(rt, "analyze", msg["job_id"], limits, facts.need_bytes,
                                      analyze_image, raw, s.max_image_pixels, budget)
    else:
        suffix = suffix_for(src["content_type"])
        with downloaded(rt.blobs, src, suffix) as path:  # FFmpeg reads the file; the bytes never cross the pipe
            analysis = sandbox.media_work(rt, "analyze", msg["job_id"], limits, 0, _video_file, b"", path, suffix,
                                          s.max_video_seconds, s.max_video_frames, budget, s.max_video_frame_pixels)
    payload = {"job_id": msg["job_id"], "kind": msg["kind"], "source": src, "analysis": analysis}
    return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": analysis})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("analyze", settings, runtime)
    register_stage(app, rt, "analyze", handle)
    sandbox.preload(["services.analyze.image", "services.analyze.video"])
    sandbox.warm_up()
    return app
