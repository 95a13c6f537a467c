"""Image analysis: every pixel step runs on one small, upright working copy from a reduced-scale decode.

Header-only facts (format, size, EXIF, ICC, frames) come from the lazily opened file; then one
decode (JPEG: DCT-scaled, 1/2..1/8) gives a copy of at most WORK_EDGE px that palette, sharpness,
hash, faces and attention all share. Boxes are scaled back to the upright original's pixels.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..common import heif
from ..common.imaging import load_checked, open_image
from .attention import attention_box
from .budget import Budget
from .exif import exif_subset
from .faces import detect_faces
from .palette import dominant_colors
from .phash import phash
from .sharpness import sharpness

# Orientations 5-8 are rotated by 90 or 270 degrees: width and height swap when upright.
TRANSPOSED = (5, 6, 7, 8)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
WORK_EDGE = 512  # long edge of the working copy; every step needs less (faces run at 384)
DRAFT_EDGE = 384  # JPEG DCT scaling may stop anywhere in 384..WORK_EDGE: a 12 MP photo decodes at 1/8
ANIMATION_SCAN_FRAMES = 1000  # past this, total duration is extrapolated from the average frame


def _animation(im: Image.Image, budget: Budget) -> dict:
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames <= 1:
        return {"frames": 1, "duration_ms": 0}
    total, seen = 0, 0
    try:
        for i in range(min(frames, ANIMATION_SCAN_FRAMES)):
            im.seek(i)
            total += int(im.info.get("duration", 0) or 0)
            seen += 1
            if i % 50 == 0:
                budget.check("reading animation frames")
    except EOFError:
        pass
    finally:
        im.seek(0)
    if seen and seen < frames:
        total = total * frames // seen
    return {"frames": frames, "duration_ms": total}


def _working_copy(im: Image.Image, orientation: int) -> Image.Image:
    r = DRAFT_EDGE / max(im.size)  # JPEG: the decoder scales by 1/2..1/8 while the long edge stays >= DRAFT_EDGE
    im.draft("RGB", (max(1, int(im.width * r)), max(1, int(im.height * r))))
    load_checked(im)
    if orientation in UPRIGHT:
        im = im.transpose(UPRIGHT[orientation])
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
    im = open_image(raw, max_pixels)  # pixel limit checked from the header, nothing decoded yet
    fmt = (im.format or "unknown").lower()
    exif = exif_subset(im)
    orientation = exif["orientation"]
    width, height = (im.height, im.width) if orientation in TRANSPOSED else (im.width, im.height)
    color = {"mode": im.mode, "has_icc": bool(im.info.get("icc_profile"))}
    animation = _animation(im, budget)

    work = _working_copy(im, orientation)
    budget.check("decoding the image")
    rgb = np.asarray(work)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sx, sy = width / work.width, height / work.height
    mean = [int(round(c)) for c in rgb.reshape(-1, 3).mean(0)]
    palette = dominant_colors(rgb)
    sharp = sharpness(gray)
    hash64 = phash(gray)
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
        "orientation": orientation,
        "mean_color": mean,
        "exif": exif,
        "color": color,
        "animation": animation,
        "palette": palette,
        "sharpness": sharp,
        "phash": hash64,
        "faces": face_boxes,
        "attention": _scaled(attention, sx, sy, width, height),
    }
