"""render: writes renditions under deterministic names, publishes media-rendered."""
from __future__ import annotations

from flask import Flask

from ..common.config import Settings
from ..common.mediatypes import suffix_for
from ..common.runtime import Runtime
from ..common.stage import StageResult, register_stage
from ..common.web import create_service_app
from .image import encode, render_image
from .presets import CACHE_CONTROL, CONTENT_TYPES, EXTENSIONS, POSTER
from .video import poster_frame


def object_name(job_id: str, preset: str, fmt: str) -> str:
    return f"renditions/{job_id}/{preset}.{EXTENSIONS[fmt]}"


def handle(rt: Runtime, job: dict, msg: dict) -> StageResult:
    src, analysis, job_id = msg["source"], msg["analysis"], msg["job_id"]
    raw = rt.blobs.get_bytes(src["bucket"], src["name"], src["generation"])
    if msg["kind"] == "image":
        outputs, skipped = render_image(raw, analysis["width"], analysis["height"], rt.settings.max_image_pixels)
    else:
        suffix = suffix_for(src["content_type"])
        poster = poster_frame(raw, suffix, analysis.get("frame_count", 0), POSTER.long_edge)
        outputs = [(POSTER.name, fmt, poster.size, encode(poster, fmt)) for fmt in POSTER.formats]
        skipped = []
    renditions = []
    for preset, fmt, (w, h), data in outputs:
        stored = rt.blobs.put_if_absent(
            rt.settings.renditions_bucket, object_name(job_id, preset, fmt), data, CONTENT_TYPES[fmt], CACHE_CONTROL
        )
        renditions.append({
            "preset": preset, "format": fmt, "uri": stored.uri, "generation": stored.generation,
            "width": w, "height": h, "bytes": stored.size, "content_type": CONTENT_TYPES[fmt],
        })
    payload = {
        "job_id": job_id, "kind": msg["kind"], "source": src, "analysis": analysis,
        "renditions": renditions, "skipped": skipped,
    }
    return StageResult(publish=[("media-rendered", payload)], job_fields={"renditions": renditions, "skipped": skipped})


def create_app(settings: Settings | None = None) -> Flask:
    app, rt = create_service_app("render", settings)
    register_stage(app, rt, "render", handle)
    return app
