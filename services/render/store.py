"""Where render's outputs go: the renditions bucket, under deterministic names, create-if-absent.

renditions/{job}/{preset}.{ext} for images and video stills (renditions/{job}/shot-007.jpg),
the storyboard beside them, the HLS tree under renditions/{job}/hls/, and segment work files
under work/{job}/. Same input, same names: a redelivery adopts what an earlier attempt wrote.
"""
from __future__ import annotations

from pathlib import Path

from ..pipeline.handon import ensure_job_active
from ..pipeline.runtime import Runtime
from .formats import CACHE_CONTROL, FORMATS
from .image import Rendition
from .video import SPRITE_NAME, Storyboard

VTT_NAME = "storyboard.vtt"
VTT_TYPE = "text/vtt; charset=utf-8"


def object_name(job_id: str, r: Rendition) -> str:
    """renditions/{job}/{preset}.{ext}; video stills renditions/{job}/shot-007.jpg. Same input, same names."""
    stem = f"shot-{r.extra['shot']:03d}" if "shot" in r.extra else r.preset
    return f"renditions/{job_id}/{stem}.{FORMATS[r.format].extension}"


def store_file(rt: Runtime, name: str, data: bytes | Path, content_type: str) -> dict:
    ensure_job_active()  # a job cancelled meanwhile gets nothing more written
    stored = rt.blobs.put_if_absent(rt.settings.renditions_bucket, name, data, content_type, CACHE_CONTROL)
    return {"uri": stored.uri, "generation": stored.generation, "bytes": stored.size, "content_type": content_type}


def store_rendition(rt: Runtime, job_id: str, r: Rendition, name: str | None = None) -> dict:
    ref = store_file(rt, name or object_name(job_id, r), r.data, FORMATS[r.format].content_type)
    return {"preset": r.preset, "format": r.format, "width": r.size[0], "height": r.size[1], **ref, **r.extra}


def store_storyboard(rt: Runtime, job_id: str, board: Storyboard) -> dict:
    prefix = f"renditions/{job_id}/"
    sprite = store_file(rt, prefix + SPRITE_NAME, board.sprite, FORMATS["jpeg"].content_type)
    vtt = store_file(rt, prefix + VTT_NAME, board.vtt.encode(), VTT_TYPE)
    return {
        "sprite": {"format": "jpeg", "width": board.size[0], "height": board.size[1], **sprite},
        "vtt": vtt,
        "tile_width": board.tile[0], "tile_height": board.tile[1],
        "columns": board.columns, "rows": board.rows, "tiles": board.tiles,
        "interval_s": round(board.interval_s, 3),
    }
