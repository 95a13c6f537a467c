"""One derivative made by one method in a fresh process, for bench/derivatives_bench.py: its peak RSS
is then its own. Prints JSON {ms, bytes, rss_mb, size}; writes the output beside for scoring.

    python -m bench.derivatives_worker METHOD SOURCE OUT [WIDTH]

Methods: `ours` (services/render/derive.render_derivative, what the media child runs, its
decoder chosen by decoder_for), `ours-libvips` / `ours-pillow` (the same with the decoder pinned:
libvips, or the presets' Pillow/OpenCV chain), `vips-thumbnail` (plain pyvips.Image.thumbnail +
webpsave), `pillow` (Image.thumbnail after draft(): plain Pillow at its most frugal).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

QUALITY, EFFORT = 80, 4


def analysis_of(path: str) -> dict:
    from PIL import Image

    with Image.open(path) as im:  # headers only; the bench inputs are upright
        return {"width": im.width, "height": im.height}


def ours(path: str, width: int, decoder: str = "auto") -> tuple[bytes, tuple[int, int]]:
    from services.render.derive import Spec, render_derivative

    ctype = "image/png" if path.endswith(".png") else "image/jpeg"
    d = render_derivative(b"", path, Spec(ctype, analysis_of(path), (width, None), "contain", (0.5, 0.5), "webp", QUALITY,
                                          (255, 255, 255), 10**9, decoder=decoder))
    return d.data, d.size


def ours_libvips(path: str, width: int) -> tuple[bytes, tuple[int, int]]:
    return ours(path, width, "libvips")


def ours_pillow(path: str, width: int) -> tuple[bytes, tuple[int, int]]:
    return ours(path, width, "pillow")


def vips_thumbnail(path: str, width: int) -> tuple[bytes, tuple[int, int]]:
    import pyvips

    im = pyvips.Image.thumbnail(path, width, size="down")
    return im.webpsave_buffer(Q=QUALITY, effort=EFFORT, keep="none"), (im.width, im.height)


def pillow(path: str, width: int) -> tuple[bytes, tuple[int, int]]:
    import io

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        im.draft("RGB", (width, width))  # JPEG: DCT-scaled decode; PNG: no effect (decoded whole)
        im.thumbnail((width, 10**6), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "WEBP", quality=QUALITY, method=EFFORT)
        return buf.getvalue(), im.size


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux keeps that across
    execve, so a worker started by a big parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


METHODS = {"ours": ours, "ours-libvips": ours_libvips, "ours-pillow": ours_pillow, "vips-thumbnail": vips_thumbnail,
           "pillow": pillow}


def main(argv: list[str]) -> int:
    method, source, out = argv[:3]
    width = int(argv[3]) if len(argv) > 3 else 800
    started = time.perf_counter()
    data, size = METHODS[method](source, width)
    ms = (time.perf_counter() - started) * 1000
    Path(out).write_bytes(data)
    rss_mb = peak_rss_mb()
    print(json.dumps({"ms": ms, "bytes": len(data), "rss_mb": rss_mb, "size": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
