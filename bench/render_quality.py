"""Scoring renditions: SSIM on luma against a high-quality reference resize of the full original.

SSIM is Wang et al. (2004) with the usual 11x11 Gaussian window (sigma 1.5), computed with
OpenCV filters: the same numbers as skimage's `gaussian_weights=True` variant, ~10x faster,
which matters for 8 MP renditions scored three times per input.
The reference is Pillow's LANCZOS (Lanczos-3) from the full-resolution, upright decode, in one
step (no chain, no reduced decode): what (a) does, so (a) scores ~1 by construction on
resizing and only loses to its encoder.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2))
    return float(m[5:-5, 5:-5].mean())  # drop the border, where the window is clipped


class Reference:
    """Lanczos resizes of one original, cached by (size, crop)."""

    def __init__(self, raw: bytes):
        im = Image.open(io.BytesIO(raw))
        im.load()
        self.full = ImageOps.exif_transpose(im).convert("RGB")
        self._cache: dict = {}

    def get(self, size: tuple[int, int], crop: bool) -> np.ndarray:
        key = (size, crop)
        if key not in self._cache:
            lanczos = Image.Resampling.LANCZOS
            im = ImageOps.fit(self.full, size, lanczos) if crop else self.full.resize(size, lanczos)
            self._cache[key] = luma(im)
        return self._cache[key]

    def score(self, data: bytes, crop: bool) -> float:
        im = Image.open(io.BytesIO(data))
        return ssim(luma(im), self.get(im.size, crop))

    def score_file(self, path, crop: bool) -> float:
        im = Image.open(path)
        return ssim(luma(im), self.get(im.size, crop))
