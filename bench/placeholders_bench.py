"""ThumbHash and BlurHash of a 12 MP still from analysis's own decode (its <=512 px working copy), beside the
steps analysis already runs on that copy (pHash, palette) and the whole analysis, in the same run.
Goal: each placeholder <= 5 ms, <= 40 characters. Run: `python -m bench placeholders` (under the lock).
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from localcloud import samples
from services.analyze.image import _working_copy, analyze_image
from services.analyze.palette import dominant_colors
from services.analyze.phash import phash
from services.media.imaging import open_image
from services.media.orientation import left_to_apply
from services.media.placeholders import MAX_EDGE, blurhash, fit_within, thumbhash

REPEAT = 50


def _ms(fn, repeat: int = REPEAT) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> None:
    raw = samples.large_jpeg(4000, 3000)
    im = open_image(raw, 100_000_000)
    work = _working_copy(im, left_to_apply(im))
    rgb = np.asarray(work)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = fit_within(rgb, MAX_EDGE)
    rows = [
        ("downscale working copy to <=100 px", lambda: fit_within(rgb, MAX_EDGE)),
        ("thumbhash (from the <=100 px copy)", lambda: thumbhash(small)),
        ("blurhash (from the <=100 px copy)", lambda: blurhash(small)),
        ("both, from the working copy", lambda: (thumbhash(fit_within(rgb, MAX_EDGE)), blurhash(fit_within(rgb, MAX_EDGE)))),
        ("baseline: pHash (same copy)", lambda: phash(gray)),
        ("baseline: palette (same copy)", lambda: dominant_colors(rgb)),
    ]
    print(f"12 MP JPEG (4000x3000), analysis's working copy {work.width}x{work.height}; median / p95 of {REPEAT} runs")
    for name, fn in rows:
        p50, p95 = _ms(fn)
        print(f"  {name:<38} {p50:7.2f} / {p95:7.2f} ms")
    p50, p95 = _ms(lambda: analyze_image(raw, 100_000_000), 5)
    print(f"  {'baseline: the whole analysis':<38} {p50:7.2f} / {p95:7.2f} ms (5 runs)")
    print(f"  lengths: thumbhash {len(thumbhash(small))}, blurhash {len(blurhash(small))} characters")
