"""Where a smart crop should look: the faces if any, else the salient region (spectral residual + edges)."""
from __future__ import annotations

import cv2
import numpy as np

SALIENCY_EDGE = 64
FACE_PAD = 0.6  # of the face size on each side: hair, chin and a little shoulder
MASS_LOW, MASS_HIGH = 0.1, 0.9  # the box holds the central 80% of the saliency mass on each axis
MIN_BOX_FRACTION = 0.25


def _saliency(gray: np.ndarray) -> np.ndarray:
    """Spectral residual saliency (Hou & Zhang 2007) blended with gradient energy, on a 64 px copy."""
    small = cv2.resize(gray, (SALIENCY_EDGE, SALIENCY_EDGE), interpolation=cv2.INTER_AREA).astype(np.float32)
    spectrum = np.fft.fft2(small)
    log_amp = np.log1p(np.abs(spectrum))
    residual = log_amp - cv2.blur(log_amp, (3, 3))
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), 2.5)
    edges = cv2.magnitude(cv2.Sobel(small, cv2.CV_32F, 1, 0), cv2.Sobel(small, cv2.CV_32F, 0, 1))
    edges = cv2.GaussianBlur(edges, (0, 0), 2.5)
    combined = sal / (sal.max() + 1e-6) + 0.5 * edges / (edges.max() + 1e-6)
    return np.maximum(combined - combined.mean(), 0)  # only what stands out from the average counts


def _span(mass: np.ndarray, n: int) -> tuple[int, int]:
    cdf = np.cumsum(mass) / (mass.sum() + 1e-9)
    lo, hi = int(np.searchsorted(cdf, MASS_LOW)), int(np.searchsorted(cdf, MASS_HIGH)) + 1
    need = max(1, int(round(len(mass) * MIN_BOX_FRACTION)))
    if hi - lo < need:
        mid = (lo + hi) // 2
        lo = max(0, min(mid - need // 2, len(mass) - need))
        hi = lo + need
    return lo * n // len(mass), min(n, hi * n // len(mass))


def attention_box(gray: np.ndarray, faces: list[tuple[int, int, int, int]]) -> dict:
    """Box in the pixels of `gray`."""
    h, w = gray.shape
    if faces:
        x0 = min(x - FACE_PAD * fw for x, y, fw, fh in faces)
        y0 = min(y - FACE_PAD * fh for x, y, fw, fh in faces)
        x1 = max(x + (1 + FACE_PAD) * fw for x, y, fw, fh in faces)
        y1 = max(y + (1 + FACE_PAD) * fh for x, y, fw, fh in faces)
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
        return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "source": "faces"}
    sal = _saliency(gray)
    if sal.sum() <= 0:
        return {"x": 0, "y": 0, "width": w, "height": h, "source": "saliency"}
    x0, x1 = _span(sal.sum(0), w)
    y0, y1 = _span(sal.sum(1), h)
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "source": "saliency"}
