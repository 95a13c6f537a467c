"""render: writes renditions under deterministic names, publishes media-rendered (v3).

Images here; videos in services/render/video_stage.py (the ladder per segment, the fan-in).

Start-up loads and validates the presets file and encodes a probe image in every
configured format, so a bad file or a Pillow without AVIF stops the service at boot.
The media work runs in a bounded child (services/media/sandbox.py, services/render/work.py):
headers checked first, the declared memory admitted, a deadline from the ack deadline.
"""
from __future__ import annotations

import logging
from functools import partial

from flask import Flask

from ..common.config import Settings
from ..media import precheck, sandbox
from ..media.mediatypes import suffix_for
from ..pipeline import media_work
from ..pipeline.handon import StageResult
from ..pipeline.jobstate import Job
from ..pipeline.push import register_segments, register_stage
from ..pipeline.runtime import Runtime
from ..pipeline.web import create_service_app
from .formats import check_writable
from .hdr import HDR_CHOICES
from .presets import Catalogue, load
from .store import store_rendition
from .video_stage import handle_video, make_merge, make_work, segment_outputs, segment_stored
from .work import RenderOptions, render_media

logger = logging.getLogger("mediarelay.render")


def make_handler(opts: RenderOptions):
    def handle(rt: Runtime, job: Job, msg: dict) -> StageResult:
        if msg["kind"] == "video":
            return handle_video(rt, opts, job, msg)
        if (job.get("duplicate") or {}).get("action") == "skipped":
            return skipped_as_duplicate(opts, job, msg)
        return render_image_job(rt, opts, msg)

    return handle


def render_image_job(rt: Runtime, opts: RenderOptions, msg: dict) -> StageResult:
    """Download, check the headers, render in the bounded child, store, hand over."""
    src, analysis, job_id = msg["source"], msg["analysis"], msg["job_id"]
    limits = media_work.stage_limits(rt, "render")  # before the download: the whole job fits the ack deadline
    raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
    facts = precheck.check(raw, "image", rt.settings)
    work = partial(render_media, kind=msg["kind"], suffix=suffix_for(src["content_type"]), analysis=analysis, opts=opts,
                   budget=limits.budget("rendering"))
    out = media_work.media_work(rt, "render", job_id, work, limits=limits, need_bytes=facts.need_bytes, raw=raw)
    fields = {"renditions": [store_rendition(rt, job_id, r) for r in out.renditions], "skipped": out.skipped}
    payload = {"job_id": job_id, "kind": msg["kind"], "source": src, "analysis": analysis, **fields}
    return StageResult(publish=[("media-rendered", payload)], job_fields=fields)


def skipped_as_duplicate(opts: RenderOptions, job: Job, msg: dict) -> StageResult:
    """The upload asked on_duplicate=skip and analysis found its earlier copy: no download, no decode, every
    preset skipped with the reason; the job completes marked as that copy's duplicate."""
    reason = f"near-duplicate of job {job['duplicate']['of']}: the upload asked on_duplicate=skip"
    fields = {"renditions": [], "skipped": [{"preset": p.name, "reason": reason} for p in opts.catalogue.image_presets]}
    payload = {"job_id": msg["job_id"], "kind": msg["kind"], "source": msg["source"], "analysis": msg["analysis"], **fields}
    return StageResult(publish=[("media-rendered", payload)], job_fields=fields)


def load_catalogue(settings: Settings) -> Catalogue:
    """Presets validated and every configured format proven writable, or start-up fails here."""
    catalogue = load(settings.render_presets_file)
    check_writable(catalogue.formats())
    logger.info("render presets %s; formats %s writable", [p.name for p in catalogue.image_presets], sorted(catalogue.formats()))
    return catalogue


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("render", settings, runtime)
    if rt.settings.video_hdr not in HDR_CHOICES:  # a bad value stops the service at start-up, not a job
        raise ValueError(f"VIDEO_HDR={rt.settings.video_hdr!r}: expected one of {sorted(HDR_CHOICES)}")
    opts = RenderOptions.build(rt.settings, load_catalogue(rt.settings))
    register_stage(app, rt, "render", make_handler(opts))
    register_segments(app, rt, "render", make_work(opts), make_merge(opts), outputs=segment_outputs, stored=segment_stored)
    sandbox.preload(["services.render.work", "services.render.video_stage"])
    sandbox.warm_up()
    return app
