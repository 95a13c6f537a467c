"""Sharpness: variance of the Laplacian at one fixed scale, so a blurred copy ranks below its original at any size."""
from __future__ import annotations

import cv2
import numpy as np

# Every image is measured at this long edge: the Laplacian's response depends on scale, so comparing
# a 4000 px photo with a 600 px copy is only fair once both are resampled to the same size.
MEASURE_EDGE = 512


def sharpness(gray: np.ndarray) -> float:
    h, w = gray.shape
    scale = MEASURE_EDGE / max(h, w)
    if scale != 1:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    return round(float(lap.var()), 2)
