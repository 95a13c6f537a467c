"""Image analysis: every pixel step runs on one small, upright working copy from a reduced-scale decode.

Header-only facts (format, size, EXIF, ICC, frames) come from the lazily opened file; then one
decode (JPEG: DCT-scaled, 1/2..1/8) gives a copy of at most WORK_EDGE px that palette, sharpness,
hash, faces and attention all share. Boxes are scaled back to the upright original's pixels.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..media import heif
from ..media.budget import Budget
from ..media.decoding import decoding
from ..media.firstframe import first_webp_frame
from ..media.imaging import ANIMATED_FORMATS, describe, frame_count, frames, is_truncated, load_checked, open_image
from ..media.orientation import left_to_apply, upright_image, upright_size_of
from ..media.placeholders import placeholders
from ..media.precheck import facts_of
from .attention import attention_box
from .exif import exif_subset
from .faces import detect_faces
from .palette import dominant_colors
from .phash import phash
from .sharpness import sharpness

ANIMATION_SCAN_FRAMES = 1000  # past this, total duration is extrapolated from the average frame
WORK_EDGE = 512  # long edge of the working copy; every step needs less (faces run at 384)
DRAFT_EDGE = 384  # JPEG DCT scaling may stop anywhere in 384..WORK_EDGE: a 12 MP photo decodes at 1/8


def _animation(raw: bytes, im: Image.Image, budget: Budget) -> dict:
    """Frame count and total duration. GIF, WebP and APNG from their headers: no frame is
    decoded, so a 10 000-frame file on a big canvas costs a header walk (precheck.py); a
    damaged later frame is found by render, which decodes frames only for animated output
    under its caps. Other animations (AVIF) from their frames, which carry the durations;
    TIFF pages are only counted."""
    facts = facts_of(raw)
    if facts.format in ("gif", "webp", "png"):
        return {"frames": facts.frames, "duration_ms": facts.duration_ms}
    count = frame_count(im)
    if count <= 1 or im.format not in ANIMATED_FORMATS:
        return {"frames": max(count, 1), "duration_ms": 0}
    total, seen = 0, 0
    for i, frame in enumerate(frames(im, ANIMATION_SCAN_FRAMES)):
        total += _duration(frame.info.get("duration"))
        seen += 1
        if i % 50 == 0:
            budget.check("reading animation frames")
    with decoding(describe(im)):
        im.seek(0)
    if seen and seen < count:
        total = total * count // seen
    return {"frames": count, "duration_ms": total}


def _duration(value) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def _reduced(im: Image.Image, factor: int, rows: int = 64) -> Image.Image:
    """im.reduce(factor), but alpha band by band: Pillow premultiplies RGBA into a full-size
    RGBa copy before reducing; here only a band at a time is (whole boxes only: the last
    factor-1 rows and columns at most are left out)."""
    if im.mode not in ("RGBA", "LA"):
        return im.reduce(factor)
    out = Image.new(im.mode, (im.width // factor, im.height // factor))
    step = factor * rows
    for r0 in range(0, out.height * factor, step):
        band = im.crop((0, r0, out.width * factor, min(r0 + step, out.height * factor)))
        out.paste(band.reduce(factor), (0, r0 // factor))
    return out


def _working_copy(im: Image.Image, orientation: int) -> Image.Image:
    r = DRAFT_EDGE / max(im.size)  # JPEG: the decoder scales by 1/2..1/8 while the long edge stays >= DRAFT_EDGE
    im.draft("RGB", (max(1, int(im.width * r)), max(1, int(im.height * r))))
    load_checked(im)
    factor = max(im.size) // (2 * WORK_EDGE)
    with decoding(describe(im)):  # mode conversions of what was decoded: still the decoder's
        if factor >= 2 and im.mode in ("RGB", "RGBA", "L", "LA", "I", "F"):
            im = _reduced(im, factor)  # box average first: a big decode is never converted or copied at full size
        return _upright_rgb(upright_image(im, orientation))


def _upright_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))  # as render flattens it
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    if max(im.size) > WORK_EDGE:
        scale = WORK_EDGE / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR,
                       reducing_gap=2.0)
    return im


def _scaled(box: dict, sx: float, sy: float, width: int, height: int) -> dict:
    x, y = int(round(box["x"] * sx)), int(round(box["y"] * sy))
    out = dict(box)
    out.update(x=min(x, width - 1), y=min(y, height - 1))
    out["width"] = max(1, min(width - out["x"], int(round(box["width"] * sx))))
    out["height"] = max(1, min(height - out["y"], int(round(box["height"] * sy))))
    return out


def analyze_image(raw: bytes, max_pixels: int, budget: Budget | None = None) -> dict:
    budget = budget or Budget.unlimited()
    im = open_image(raw, max_pixels)  # pixel limit, mode and codec checked from the header, nothing decoded yet
    fmt = (im.format or "unknown").lower()
    with decoding(describe(im)):
        exif = exif_subset(im)
        pending = left_to_apply(im)  # what Pillow's decode leaves to apply (a TIFF it turns itself)
        width, height = upright_size_of(im)
    color = {"mode": im.mode, "has_icc": bool(im.info.get("icc_profile"))}
    animation = _animation(raw, im, budget)
    if fmt == "webp" and animation["frames"] > 1:
        im = first_webp_frame(raw, im.size) or im  # not through the animation decoder's two canvases

    work = _working_copy(im, pending)
    budget.check("decoding the image")
    rgb = np.asarray(work)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sx, sy = width / work.width, height / work.height
    mean = [int(round(c)) for c in rgb.reshape(-1, 3).mean(0)]
    palette = dominant_colors(rgb)
    sharp = sharpness(gray)
    hash64 = phash(gray)
    shown_while_loading = placeholders(rgb)  # from the working copy: well under a millisecond each (bench placeholders)
    budget.check("describing the image")
    faces = detect_faces(gray)
    budget.check("finding faces")
    attention = attention_box(gray, faces)
    face_boxes = [_scaled({"x": x, "y": y, "width": w, "height": h}, sx, sy, width, height) for x, y, w, h in faces]
    images = int(im.info.get(heif.IMAGES_KEY, 1))  # a HEIF burst/collection: its primary image was analysed
    return {
        **({"images": {"count": images, "analysed": "primary"}} if images > 1 else {}),
        "format": fmt,
        "width": width,
        "height": height,
        "orientation": exif["orientation"],  # as the file declares it
        "truncated": is_truncated(raw),
        "mean_color": mean,
        "exif": exif,
        "color": color,
        "animation": animation,
        "palette": palette,
        "sharpness": sharp,
        "phash": hash64,
        "placeholders": shown_while_loading,
        "faces": face_boxes,
        "attention": _scaled(attention, sx, sy, width, height),
    }
