"""Where to crop: the analysis attention box when analyze sent one, else a cheap saliency map.

The saliency fallback scores a small copy of the frame by edge energy plus colour
saturation (what libvips' `attention` crop also weighs) and slides the crop window along
the free axis to the densest position, with a mild pull towards the centre.
"""
from __future__ import annotations

import cv2
import numpy as np

SALIENCY_EDGE = 96  # px: long edge of the map; enough to place a crop, costs well under a millisecond
CENTRE_PULL = 0.15


def saliency_map(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    s = SALIENCY_EDGE / max(h, w)
    small = cv2.resize(frame[..., :3], (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    edges = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    sat = small.max(axis=2).astype(np.float32) - small.min(axis=2).astype(np.float32)
    score = edges / (edges.max() + 1e-6) + 0.5 * sat / (sat.max() + 1e-6)
    if frame.shape[2] == 4:  # transparent areas hold nothing worth framing
        score *= cv2.resize(frame[..., 3], (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA) / 255.0
    return score


def _best_start(profile: np.ndarray, window: float) -> float:
    """Start (in profile units) of the window of length `window` holding the most mass."""
    n = len(profile)
    win = max(1, min(n, round(window)))
    if win >= n:
        return 0.0
    sums = np.convolve(profile, np.ones(win), mode="valid")  # n - win + 1 positions
    offsets = np.arange(len(sums)) - (n - win) / 2
    sums = sums * (1 - CENTRE_PULL * np.abs(offsets) / max(1, (n - win) / 2))
    return float(np.argmax(sums))


def window(frame_size: tuple[int, int], win: tuple[float, float], focus: tuple[float, float] | None = None,
           saliency: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Crop box (x0, y0, x1, y1) of size `win` inside a frame of `frame_size` (both width, height).

    `focus` is a point to centre on (attention box centre); else the saliency map decides; else the centre."""
    fw, fh = frame_size
    ww, wh = min(fw, win[0]), min(fh, win[1])
    if focus is not None:
        x0, y0 = focus[0] - ww / 2, focus[1] - wh / 2
    elif saliency is not None:
        mh, mw = saliency.shape
        sx, sy = mw / fw, mh / fh
        x0 = _best_start(saliency.sum(axis=0), ww * sx) / sx if ww < fw else 0.0
        y0 = _best_start(saliency.sum(axis=1), wh * sy) / sy if wh < fh else 0.0
    else:
        x0, y0 = (fw - ww) / 2, (fh - wh) / 2
    x0 = min(max(0.0, x0), fw - ww)
    y0 = min(max(0.0, y0), fh - wh)
    x, y = round(x0), round(y0)
    return x, y, min(fw, x + round(ww)), min(fh, y + round(wh))


def attention_focus(analysis: dict, frame_size: tuple[int, int]) -> tuple[float, float] | None:
    """Centre of analyze's attention box (pixels of the upright original), in frame pixels."""
    att = analysis.get("attention")
    if not att or not analysis.get("width") or not analysis.get("height"):
        return None
    try:
        cx = (float(att["x"]) + float(att["width"]) / 2) * frame_size[0] / analysis["width"]
        cy = (float(att["y"]) + float(att["height"]) / 2) * frame_size[1] / analysis["height"]
    except (KeyError, TypeError, ValueError):
        return None
    return cx, cy
