"""Placeholders a page shows while the picture loads: ThumbHash and BlurHash, from an upright RGB copy.

Both are a handful of DCT coefficients of a tiny copy, quantised into a short text (ThumbHash: base64
of ~25 bytes; BlurHash: base83, 28 characters at 4x3 components). The references (evanw/thumbhash,
woltapp/blurhash) loop over pixels per coefficient; here each channel's coefficients are two matrix
products, so both cost well under a millisecond on the <=100 px copy made from analysis's working copy
(bench: `python -m bench placeholders`). The PyPI ports were not taken: `thumbhash-python` pins
Pillow < 11 and is pure Python; `blurhash-python` feeds pixels through Python lists.
tests/unit/test_placeholders.py holds both to vectors made by those reference ports.

The copy is flattened on white (as analysis and render flatten transparency), so ThumbHash's alpha
channel is never used.
"""
from __future__ import annotations

import base64
import math

import cv2
import numpy as np

MAX_EDGE = 100  # ThumbHash's reference refuses anything larger
_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def placeholders(rgb: np.ndarray) -> dict[str, str]:
    """{"thumbhash", "blurhash"} of an upright HxWx3 uint8 image of any size."""
    small = fit_within(rgb, MAX_EDGE)
    return {"thumbhash": thumbhash(small), "blurhash": blurhash(small)}


def fit_within(rgb: np.ndarray, edge: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= edge:
        return rgb
    s = edge / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # the references' Math.round / (int)(x + 0.5), not Python's half-to-even


def _cosines(n: int, count: int, offset: float) -> np.ndarray:
    """count x n: cos(pi / n * k * (i + offset)), the basis along one axis."""
    return np.cos(np.pi / n * np.arange(count)[:, None] * (np.arange(n)[None, :] + offset))


# -- ThumbHash (evanw/thumbhash rgbaToThumbHash, opaque images) -------------------------------------------
def thumbhash(rgb: np.ndarray) -> str:
    h, w = rgb.shape[:2]
    if max(h, w) > MAX_EDGE:
        raise ValueError(f"{w}x{h} does not fit in {MAX_EDGE}x{MAX_EDGE}")
    px = rgb.astype(np.float64) / 255.0
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    lx = max(1, _round(7 * w / max(w, h)))
    ly = max(1, _round(7 * h / max(w, h)))
    l_dc, l_ac, l_scale = _thumb_channel((r + g + b) / 3, max(lx, 3), max(ly, 3))
    p_dc, p_ac, p_scale = _thumb_channel((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _thumb_channel(r - g, 3, 3)
    landscape = w > h
    header24 = (_round(63 * l_dc) | (_round(31.5 + 31.5 * p_dc) << 6) | (_round(31.5 + 31.5 * q_dc) << 12)
                | (_round(31 * l_scale) << 18))
    header16 = (ly if landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9) | (int(landscape) << 15)
    out = bytearray([header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8])
    acs = [*l_ac, *p_ac, *q_ac]
    out += bytes((len(acs) + 1) // 2)
    for i, f in enumerate(acs):
        out[5 + (i >> 1)] |= _round(15 * f) << ((i & 1) << 2)
    return base64.b64encode(bytes(out)).decode("ascii")


def _thumb_channel(channel: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
    h, w = channel.shape
    f = _cosines(h, ny, 0.5) @ channel @ _cosines(w, nx, 0.5).T / (w * h)  # f[cy, cx]
    dc, ac = 0.0, []
    for cy in range(ny):
        cx = 0
        while cx * ny < nx * (ny - cy):  # the reference's triangle of coefficients, in its order
            if cx or cy:
                ac.append(float(f[cy, cx]))
            else:
                dc = float(f[0, 0])
            cx += 1
    scale = max((abs(a) for a in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * a for a in ac]
    return dc, ac, scale


# -- BlurHash (woltapp/blurhash C encoder) ------------------------------------------------------------------
_V = np.arange(256) / 255.0
_TO_LINEAR = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4)


def blurhash(rgb: np.ndarray) -> str:
    h, w = rgb.shape[:2]
    nx, ny = (4, 3) if w >= h else (3, 4)  # 28 characters
    lin = _TO_LINEAR[rgb]
    f = np.einsum("jy,yxc,ix->jic", _cosines(h, ny, 0.0), lin, _cosines(w, nx, 0.0)) / (w * h)
    f[1:] *= 2
    f[0, 1:] *= 2  # normalisation 2 for every AC term, 1 for DC
    factors = f.reshape(-1, 3)
    dc, ac = factors[0], factors[1:]
    out = _b83((nx - 1) + (ny - 1) * 9, 1)
    actual_max = float(np.abs(ac).max()) if len(ac) else 0.0
    quantised_max = max(0, min(82, math.floor(actual_max * 166 - 0.5)))
    maximum = (quantised_max + 1) / 166
    out += _b83(quantised_max if len(ac) else 0, 1)
    out += _b83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    for r, g, b in ac:
        qr, qg, qb = (max(0, min(18, math.floor(_sign_pow(v / maximum, 0.5) * 9 + 9.5))) for v in (r, g, b))
        out += _b83(qr * 19 * 19 + qg * 19 + qb, 2)
    return out


def _to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, float(value)))
    return int(v * 12.92 * 255 + 0.5) if v <= 0.0031308 else int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_pow(v: float, exp: float) -> float:
    return math.copysign(abs(v) ** exp, v)


def _b83(value: int, length: int) -> str:
    return "".join(_B83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))
