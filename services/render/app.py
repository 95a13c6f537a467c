"""render: writes renditions under deterministic names, publishes media-rendered (v2).

Start-up loads and validates the presets file and encodes a probe image in every
configured format, so a bad file or a Pillow without AVIF stops the service at boot.
"""
from __future__ import annotations

import logging

from flask import Flask

from ..common.config import Settings
from ..common.mediatypes import suffix_for
from ..common.runtime import Runtime
from ..common.stage import StageResult, register_stage
from ..common.video import Limits, downloaded
from ..common.web import create_service_app
from .animated import is_animated, render_animated
from .formats import CACHE_CONTROL, FORMATS, check_writable
from .image import Rendition, render_image
from .presets import Catalogue, load
from .video import SPRITE_NAME, render_video

logger = logging.getLogger("mediarelay.render")
VTT_NAME = "storyboard.vtt"
VTT_TYPE = "text/vtt; charset=utf-8"


def object_name(job_id: str, r: Rendition) -> str:
    """renditions/{job}/{preset}.{ext}; video stills renditions/{job}/shot-007.jpg. Same input, same names."""
    stem = f"shot-{r.extra['shot']:03d}" if "shot" in r.extra else r.preset
    return f"renditions/{job_id}/{stem}.{FORMATS[r.format].extension}"


def _store(rt: Runtime, name: str, data: bytes, content_type: str) -> dict:
    stored = rt.blobs.put_if_absent(rt.settings.renditions_bucket, name, data, content_type, CACHE_CONTROL)
    return {"uri": stored.uri, "generation": stored.generation, "bytes": stored.size, "content_type": content_type}


def _store_rendition(rt: Runtime, job_id: str, r: Rendition) -> dict:
    ref = _store(rt, object_name(job_id, r), r.data, FORMATS[r.format].content_type)
    return {"preset": r.preset, "format": r.format, "width": r.size[0], "height": r.size[1], **ref, **r.extra}


def make_handler(catalogue: Catalogue):
    def handle(rt: Runtime, job: dict, msg: dict) -> StageResult:
        src, analysis, job_id, s = msg["source"], msg["analysis"], msg["job_id"], rt.settings
        storyboard = None
        if msg["kind"] == "image":
            raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
            args = (raw, analysis, catalogue.image_presets, catalogue.encoders, s.max_image_pixels, s.flatten_background)
            if is_animated(raw, s.max_image_pixels):
                outputs, skipped = render_animated(*args, catalogue.animated_poster, s.animation_max_frames,
                                                   s.animation_max_pixels, s.render_encode_threads)
            else:
                outputs, skipped = render_image(*args, s.render_encode_threads)
        else:
            suffix = suffix_for(src["content_type"])
            with downloaded(rt.blobs, src, suffix) as path:
                outputs, board = render_video(
                    path, suffix, analysis, catalogue.poster, catalogue.still, catalogue.encoders,
                    s.storyboard_tile_width, s.storyboard_columns, s.storyboard_interval_seconds, s.storyboard_max_tiles,
                    s.video_max_stills, catalogue.storyboard_quality,
                    Limits(s.max_video_seconds, s.max_video_frames, s.max_video_frame_pixels),
                )
            skipped = []
            prefix = f"renditions/{job_id}/"
            sprite = _store(rt, prefix + SPRITE_NAME, board.sprite, FORMATS["jpeg"].content_type)
            vtt = _store(rt, prefix + VTT_NAME, board.vtt.encode(), VTT_TYPE)
            storyboard = {
                "sprite": {"format": "jpeg", "width": board.size[0], "height": board.size[1], **sprite},
                "vtt": vtt,
                "tile_width": board.tile[0], "tile_height": board.tile[1],
                "columns": board.columns, "rows": board.rows, "tiles": board.tiles,
                "interval_s": round(board.interval_s, 3),
            }
        renditions = [_store_rendition(rt, job_id, r) for r in outputs]
        payload = {
            "job_id": job_id, "kind": msg["kind"], "source": src, "analysis": analysis,
            "renditions": renditions, "skipped": skipped,
        }
        fields = {"renditions": renditions, "skipped": skipped}
        if storyboard:
            payload["storyboard"] = fields["storyboard"] = storyboard
        return StageResult(publish=[("media-rendered", payload)], job_fields=fields)

    return handle


def load_catalogue(settings: Settings) -> Catalogue:
    """Presets validated and every configured format proven writable, or start-up fails here."""
    catalogue = load(settings.render_presets_file)
    check_writable(catalogue.formats())
    logger.info("render presets %s; formats %s writable", [p.name for p in catalogue.image_presets], sorted(catalogue.formats()))
    return catalogue


def create_app(settings: Settings | None = None) -> Flask:
    app, rt = create_service_app("render", settings)
    register_stage(app, rt, "render", make_handler(load_catalogue(rt.settings)))
    return app
