"""Bench inputs for render: detailed photo mosaics (skimage's bundled photos, no downloads).

A photo scaled up 7x is soft and flatters every resizer and encoder; a mosaic of photos and
textures at about 1:1 has real pixel-level detail, like a camera file.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")
TEXTURE = ("grass", "gravel", "brick", "camera")


def mosaic(width: int, height: int, seed: int = 5) -> Image.Image:
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (width, height), (90, 90, 90))
    tiles = [Image.fromarray(getattr(skdata, n)()).convert("RGB") for n in COLOUR]
    for n in TEXTURE:  # greyscale textures, tinted so chroma carries detail too
        g = np.asarray(Image.fromarray(getattr(skdata, n)()).convert("L"), np.float32) / 255
        tint = rng.uniform(0.5, 1.0, 3)
        tiles.append(Image.fromarray((g[..., None] * tint * 255).astype(np.uint8)))
    y = 0
    while y < height:
        x, row_h = 0, int(rng.integers(380, 620))
        while x < width:
            t = tiles[int(rng.integers(len(tiles)))]
            s = row_h / t.height * rng.uniform(0.9, 1.1)
            t = t.resize((max(1, int(t.width * s)), row_h), Image.Resampling.LANCZOS)
            canvas.paste(t, (x, y))
            x += t.width
        y += row_h
    return canvas


def jpeg(im: Image.Image, orientation: int = 1, quality: int = 90) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "BenchCam"
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def write_inputs(folder: Path) -> dict[str, Path]:
    """The four bench inputs; made once and kept in bench/out (git-ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    makers = {
        "12mp.jpg": lambda: jpeg(mosaic(4000, 3000)),
        "24mp.jpg": lambda: jpeg(mosaic(6000, 4000, seed=7)),
        # Stored sideways (3000 x 4000) with orientation 6: upright it is the same 4000 x 3000 landscape.
        "12mp-rot6.jpg": lambda: jpeg(mosaic(4000, 3000).transpose(Image.Transpose.ROTATE_90), orientation=6),
        "12mp.png": lambda: png(mosaic(4000, 3000)),
    }
    paths = {}
    for name, make in makers.items():
        path = folder / name
        if not path.exists():
            path.write_bytes(make())
        paths[name] = path
    return paths
