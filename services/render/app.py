"""render: writes renditions under deterministic names, publishes media-rendered (v2).

Start-up loads and validates the presets file and encodes a probe image in every
configured format, so a bad file or a Pillow without AVIF stops the service at boot.
The media work runs in a bounded child (services/common/sandbox.py, services/render/work.py):
headers checked first, the declared memory admitted, a deadline from the ack deadline.
"""
from __future__ import annotations

import logging

from flask import Flask

from ..common import precheck, sandbox
from ..common.config import Settings
from ..common.mediatypes import suffix_for
from ..common.runtime import Runtime
from ..common.stage import StageResult, ensure_job_active, register_stage
from ..common.video import downloaded
from ..common.web import create_service_app
from .formats import CACHE_CONTROL, FORMATS, check_writable
from .image import Rendition
from .presets import Catalogue, load
from .video import SPRITE_NAME, Storyboard
from .work import RenderOptions, render_media

logger = logging.getLogger("mediarelay.render")
VTT_NAME = "storyboard.vtt"
VTT_TYPE = "text/vtt; charset=utf-8"


def object_name(job_id: str, r: Rendition) -> str:
    """renditions/{job}/{preset}.{ext}; video stills renditions/{job}/shot-007.jpg. Same input, same names."""
    stem = f"shot-{r.extra['shot']:03d}" if "shot" in r.extra else r.preset
    return f"renditions/{job_id}/{stem}.{FORMATS[r.format].extension}"


def _store(rt: Runtime, name: str, data: bytes, content_type: str) -> dict:
    ensure_job_active()  # a job cancelled meanwhile gets nothing more written
    stored = rt.blobs.put_if_absent(rt.settings.renditions_bucket, name, data, content_type, CACHE_CONTROL)
    return {"uri": stored.uri, "generation": stored.generation, "bytes": stored.size, "content_type": content_type}


def _store_rendition(rt: Runtime, job_id: str, r: Rendition) -> dict:
    ref = _store(rt, object_name(job_id, r), r.data, FORMATS[r.format].content_type)
    return {"preset": r.preset, "format": r.format, "width": r.size[0], "height": r.size[1], **ref, **r.extra}


def make_handler(opts: RenderOptions):
    def handle(rt: Runtime, job: dict, msg: dict) -> StageResult:
        return render_job(rt, opts, msg)

    return handle


def render_job(rt: Runtime, opts: RenderOptions, msg: dict) -> StageResult:
    """Download, check the headers, render in the bounded child, store, hand over."""
    src, analysis, job_id = msg["source"], msg["analysis"], msg["job_id"]
    limits = sandbox.stage_limits(rt, "render")  # before the download: the whole job fits the ack deadline
    suffix = suffix_for(src["content_type"])
    if msg["kind"] == "image":
        raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
        facts = precheck.check(raw, "image", rt.settings)
        out = sandbox.media_work(rt, "render", job_id, limits, facts.need_bytes, render_media, raw, msg["kind"],
                                 suffix, analysis, opts, limits.budget("rendering"))
    else:
        with downloaded(rt.blobs, src, suffix) as path:  # FFmpeg reads the file; the bytes never cross the pipe
            out = sandbox.media_work(rt, "render", job_id, limits, 0, render_media, b"", msg["kind"], suffix, analysis,
                                     opts, limits.budget("rendering"), path)
    fields = {"renditions": [_store_rendition(rt, job_id, r) for r in out.renditions], "skipped": out.skipped}
    if out.storyboard:
        fields["storyboard"] = _store_storyboard(rt, job_id, out.storyboard)
    payload = {"job_id": job_id, "kind": msg["kind"], "source": src, "analysis": analysis, **fields}
    return StageResult(publish=[("media-rendered", payload)], job_fields=fields)


def _store_storyboard(rt: Runtime, job_id: str, board: Storyboard) -> dict:
    prefix = f"renditions/{job_id}/"
    sprite = _store(rt, prefix + SPRITE_NAME, board.sprite, FORMATS["jpeg"].content_type)
    vtt = _store(rt, prefix + VTT_NAME, board.vtt.encode(), VTT_TYPE)
    return {
        "sprite": {"format": "jpeg", "width": board.size[0], "height": board.size[1], **sprite},
        "vtt": vtt,
        "tile_width": board.tile[0], "tile_height": board.tile[1],
        "columns": board.columns, "rows": board.rows, "tiles": board.tiles,
        "interval_s": round(board.interval_s, 3),
    }


def load_catalogue(settings: Settings) -> Catalogue:
    """Presets validated and every configured format proven writable, or start-up fails here."""
    catalogue = load(settings.render_presets_file)
    check_writable(catalogue.formats())
    logger.info("render presets %s; formats %s writable", [p.name for p in catalogue.image_presets], sorted(catalogue.formats()))
    return catalogue


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("render", settings, runtime)
    register_stage(app, rt, "render", make_handler(RenderOptions.build(rt.settings, load_catalogue(rt.settings))))
    sandbox.preload(["services.render.work"])
    sandbox.warm_up()
    return app
