"""One bench measurement in a fresh process: `python -m bench.render_worker METHOD INPUT OUTDIR REPS`.

METHOD is `ours` (services.render), `naive` (Pillow: full decode, every rendition resized
from the original with LANCZOS) or `pyvips` (thumbnail, each rendition chained from the one
before). All three make the same renditions with the same encoders and settings (Pillow's
for ours and naive, libvips' own for pyvips), taken from services/render/presets.json.
Prints one JSON line: medians in ms, and per rendition the bytes; writes the renditions to
OUTDIR for the parent to score (SSIM). Peak RSS (ru_maxrss) is read right after the whole-job
repetitions, in a fresh process per method and input, so nothing else inflates it.
"""
from __future__ import annotations

import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

from services.media.orientation import orientation, upright_size
from services.render.formats import FORMATS, encode
from services.render.image import encode_step, encode_threads, frames, plan, render_image
from services.render.presets import load

BACKGROUND = (255, 255, 255)
MAX_PIXELS = 100_000_000


def analysis_for(raw: bytes) -> dict:
    im = Image.open(io.BytesIO(raw))  # header only: no pixels decoded
    w, h = upright_size(im.size, orientation(im))
    # A centred attention box: every method then cuts its thumbnails from the same (centre) window.
    return {"width": w, "height": h, "attention": {"x": w // 2 - 1, "y": h // 2 - 1, "width": 2, "height": 2, "source": "faces"}}


def timed(fn, reps: int, after_first=None):
    times, out = [], None
    for i in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
        if i == 0 and after_first:
            after_first()
    return statistics.median(times), out


# --- ours ---------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """VmHWM, this process's own peak: ru_maxrss would carry the parent's peak across fork+exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(raw, analysis, cat, reps, threads: int = 0, halves: bool = True):
    """Whole job first (its peak RSS is read before anything else runs), then the two halves alone."""
    presets, enc = cat.image_presets, cat.encoders
    rss = []  # read after the first job, in a fresh process: later repetitions only add allocator noise

    def job():
        return render_image(raw, analysis, presets, encoders=enc, max_pixels=MAX_PIXELS, background=BACKGROUND, threads=threads)

    t_whole, (rends, _) = timed(job, reps, lambda: rss.append(peak_rss_mb()))
    rss = rss[0]

    def resize_only():
        chain, _ = frames(raw, analysis, presets, MAX_PIXELS)
        return list(chain)

    def encode_only(arrays):
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(encode_threads(threads)) as pool:
            futs = [pool.submit(encode_step, st, [arr], enc, BACKGROUND) for st, arr in arrays]
            return [r for f in futs for r in f.result()]

    t_resize, arrays = timed(resize_only, reps if halves else 1)
    t_encode, _ = timed(lambda: encode_only(arrays), reps if halves else 1)
    return t_resize, t_encode, t_whole, rss, [(r.preset, r.format, r.data) for r in rends]


def sequential(resize, encode, reps):
    """Baselines run resize then encode, one after the other: one pass times both halves and the whole.

    The peak RSS is read after the first job, as for ours."""
    rs, es, ws, rends, rss = [], [], [], None, 0.0
    for i in range(reps):
        t0 = time.perf_counter()
        images = resize()
        t1 = time.perf_counter()
        rends = encode(images)
        t2 = time.perf_counter()
        del images
        if i == 0:
            rss = peak_rss_mb()
        rs.append((t1 - t0) * 1000)
        es.append((t2 - t1) * 1000)
        ws.append((t2 - t0) * 1000)
    return statistics.median(rs), statistics.median(es), statistics.median(ws), rss, rends


# --- (a) naive Pillow -----------------------------------------------------------------------

def naive_resize(raw, analysis, presets):
    im = Image.open(io.BytesIO(raw))
    im.load()
    im = ImageOps.exif_transpose(im).convert("RGB")
    steps, _ = plan(analysis["width"], analysis["height"], presets)
    out = []
    for st in steps:
        if st.preset.crops:  # the same centred window, straight from the original
            out.append((st, ImageOps.fit(im, st.size, Image.Resampling.LANCZOS)))
        else:
            out.append((st, im.resize(st.size, Image.Resampling.LANCZOS)))
    return out


def pillow_encode(images, enc):
    return [(st.preset.name, fmt, encode(im, fmt, q, enc.get(fmt, {})))
            for st, im in images for fmt, q in st.preset.formats.items()]


def run_naive(raw, analysis, cat, reps):
    presets, enc = cat.image_presets, cat.encoders
    return sequential(lambda: naive_resize(raw, analysis, presets), lambda ims: pillow_encode(ims, enc), reps)


# --- (b) pyvips thumbnail chain ----------------------------------------------------------

def vips_resize(raw, analysis, presets):
    import pyvips

    steps, _ = plan(analysis["width"], analysis["height"], presets)
    out, prev = [], None
    for st in steps:
        w, h = st.size
        crop = "centre" if st.preset.crops else "none"
        if prev is None:  # shrink-on-load from the file, auto-rotated (an embedded profile would go to sRGB)
            img = pyvips.Image.thumbnail_buffer(raw, w, height=h, size="down", crop=crop)
        else:
            img = prev.thumbnail_image(w, height=h, size="down", crop=crop)
        img = img.copy_memory()
        out.append((st, img))
        if not st.preset.crops:
            prev = img
    return out


def vips_args(fmt: str, q: int, enc: dict) -> tuple[str, dict]:
    e = enc.get(fmt, {})
    keep = {"keep": "icc", "profile": "srgb"}  # like ours: only a small sRGB profile
    if fmt == "jpeg":
        return ".jpg", {"Q": q, "optimize_coding": e.get("optimize", True), "interlace": e.get("progressive", True),
                        "subsample_mode": "on", **keep}
    if fmt == "webp":
        return ".webp", {"Q": q, "effort": e.get("method", 4), **keep}
    # Pillow's AVIF speed s (libavif, aom cpu-used s) is libvips' effort 9 - s (libheif, aom cpu-used 9 - effort).
    return ".avif", {"Q": q, "effort": max(0, 9 - e.get("speed", 8)), "compression": "av1", "subsample_mode": "on", **keep}


def vips_encode(images, enc):
    out = []
    for st, img in images:
        for fmt, q in st.preset.formats.items():
            suffix, kw = vips_args(fmt, q, enc)
            out.append((st.preset.name, fmt, img.write_to_buffer(suffix, **kw)))
    return out


def run_pyvips(raw, analysis, cat, reps):
    import pyvips

    pyvips.cache_set_max(0)  # no operation cache: every repetition does the work again
    presets, enc = cat.image_presets, cat.encoders
    return sequential(lambda: vips_resize(raw, analysis, presets), lambda ims: vips_encode(ims, enc), reps)


METHODS = {
    "ours": run_ours,
    "ours-1thread": lambda raw, analysis, cat, reps: run_ours(raw, analysis, cat, reps, threads=1, halves=False),
    "naive": run_naive,
    "pyvips": run_pyvips,
}


def resized_pixels(method, raw, analysis, cat):
    """(preset, RGB array) of each rendition before encoding, to score the resize alone."""
    import numpy as np

    if method.startswith("ours"):
        chain, _ = frames(raw, analysis, cat.image_presets, MAX_PIXELS)
        return [(st.preset.name, arr) for st, arr in chain]
    if method == "naive":
        return [(st.preset.name, np.asarray(im)) for st, im in naive_resize(raw, analysis, cat.image_presets)]
    return [(st.preset.name, img.numpy()) for st, img in vips_resize(raw, analysis, cat.image_presets)]


def main(argv: list[str]) -> None:
    method, path, outdir, reps = argv[0], Path(argv[1]), Path(argv[2]), int(argv[3])
    raw = path.read_bytes()
    analysis = analysis_for(raw)
    cat = load()
    base = peak_rss_mb()  # interpreter + imports, before any work
    t_resize, t_encode, t_whole, rss, rends = METHODS[method](raw, analysis, cat, reps)
    outdir.mkdir(parents=True, exist_ok=True)
    for preset, arr in resized_pixels(method, raw, analysis, cat):  # after timing: lossless luma for scoring
        Image.fromarray(arr[..., :3]).convert("L").save(outdir / f"{preset}.resized.png", compress_level=1)
    sizes = {}
    for preset, fmt, data in rends:
        (outdir / f"{preset}.{FORMATS[fmt].extension}").write_bytes(data)
        sizes[f"{preset}.{fmt}"] = len(data)
    timings = {"resize_ms": t_resize, "encode_ms": t_encode, "whole_ms": t_whole}
    print(json.dumps(timings | {"rss_mb": rss, "base_mb": base, "bytes": sizes}))


if __name__ == "__main__":
    main(sys.argv[1:])
