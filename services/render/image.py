"""Image renditions: upright, RGB, each preset resized from the previous (largest first)."""
from __future__ import annotations

import io

from PIL import Image, ImageOps

from ..common.imaging import load_checked, open_image
from .presets import ENCODERS, IMAGE_PRESETS, Preset


def upright_rgb(raw: bytes, max_pixels: int, largest_edge: int) -> Image.Image:
    im = open_image(raw, max_pixels)
    # Let the JPEG decoder scale by 1/2..1/8 while staying >= the largest preset we need.
    im.draft("RGB", (largest_edge, largest_edge))
    load_checked(im)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


def fit(im: Image.Image, long_edge: int) -> Image.Image:
    scale = long_edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, **ENCODERS[fmt])
    return buf.getvalue()


def plan(width: int, height: int, presets=IMAGE_PRESETS) -> tuple[list[Preset], list[dict]]:
    """Presets to make and those skipped: a rendition is never larger than its source."""
    make, skipped = [], []
    for p in presets:
        if p.long_edge > max(width, height):
            skipped.append({"preset": p.name, "reason": f"source long edge {max(width, height)} < {p.long_edge}: never upscaled"})
        else:
            make.append(p)
    return make, skipped


def render_image(raw: bytes, width: int, height: int, max_pixels: int):
    """Yield (preset, format, Image-size, bytes) for each rendition; plus the skipped list."""
    make, skipped = plan(width, height)
    outputs = []
    if make:
        im = upright_rgb(raw, max_pixels, make[0].long_edge)
        for p in sorted(make, key=lambda p: -p.long_edge):
            im = fit(im, p.long_edge)
            for fmt in p.formats:
                outputs.append((p.name, fmt, im.size, encode(im, fmt)))
    return outputs, skipped
