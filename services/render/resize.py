"""Downscaling arrays: OpenCV for big sources, Pillow's Lanczos for small ones.

Big sources (the first steps of the chain) go through OpenCV: INTER_AREA is an exact
box-area average (anti-aliased, multi-threaded, releases the GIL); near 1:1 it is slow and
gains nothing, so reductions above 3/4 use INTER_LINEAR, whose 2x2 footprint still covers
every source pixel at that ratio. Box filters soften a little at each step, which shows on
thumbnails at the end of the chain; below LANCZOS_BELOW source pixels Pillow's Lanczos costs
a few milliseconds, so small renditions get the sharper filter. Never enlarges: callers skip.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

LINEAR_ABOVE = 0.75
LANCZOS_BELOW = 1_000_000  # source pixels


def shrink(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize `arr` (H x W x C) to `size` = (width, height)."""
    h, w = arr.shape[:2]
    if (w, h) == size:
        return arr
    if w * h <= LANCZOS_BELOW and arr.dtype == np.uint8:
        im = Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")  # Pillow premultiplies RGBA itself
        return np.asarray(im.resize(size, Image.Resampling.LANCZOS))
    ratio = min(size[0] / w, size[1] / h)
    interp = cv2.INTER_LINEAR if ratio > LINEAR_ABOVE else cv2.INTER_AREA
    return cv2.resize(arr, size, interpolation=interp)


def premultiplied_shrink(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGBA: average colour weighted by alpha, so transparent pixels do not bleed dark fringes."""
    if arr.shape[2] != 4 or arr.shape[0] * arr.shape[1] <= LANCZOS_BELOW:
        return shrink(arr, size)
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    a = arr[..., 3:4].astype(np.float32) / 255.0
    pre = np.concatenate([arr[..., :3].astype(np.float32) * a, arr[..., 3:4].astype(np.float32)], axis=2)
    small = shrink(pre, size)
    alpha = small[..., 3:4]
    rgb = np.where(alpha > 0, small[..., :3] * 255.0 / np.maximum(alpha, 1e-3), 0)
    return np.concatenate([np.clip(rgb + 0.5, 0, 255), np.clip(alpha + 0.5, 0, 255)], axis=2).astype(np.uint8)


def fit_size(width: int, height: int, box: tuple[int, int]) -> tuple[tuple[int, int], float]:
    """Size of a `contain` rendition and its scale relative to (width, height)."""
    s = min(box[0] / width, box[1] / height)
    return (max(1, round(width * s)), max(1, round(height * s))), s


def cover_scale(width: int, height: int, box: tuple[int, int]) -> float:
    """Scale at which (width, height) just covers `box` (for `cover` and `smart` crops)."""
    return max(box[0] / width, box[1] / height)
