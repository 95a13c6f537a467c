"""Colour: every rendition is 8-bit sRGB (plus alpha where kept), whatever the source mode or profile."""
from __future__ import annotations

import hashlib
import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

from ..common.errors import UnsupportedMedia
from ..media.imaging import SUPPORTED_MODES

_SRGB = ImageCms.createProfile("sRGB")
# LittleCMS's built-in sRGB, 588 bytes: the only metadata a rendition carries.
# LittleCMS stamps the profile with the time it was made (header bytes 24-35; the profile ID at 84-99
# hashes it): zeroed, so the same input gives the same rendition bytes in every process, and a
# redelivery handled elsewhere adopts what an earlier attempt wrote instead of replacing it.
_icc = bytearray(ImageCms.ImageCmsProfile(_SRGB).tobytes())
_icc[24:36] = bytes(12)
_icc[84:100] = bytes(16)
SRGB_PROFILE: bytes = bytes(_icc)


def is_srgb(icc: bytes | None) -> bool:
    """No profile means sRGB by convention; a profile that calls itself sRGB is taken at its word."""
    if not icc:
        return True
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (OSError, ImageCms.PyCMSError):
        return True  # unreadable profile: treating the pixels as sRGB is the least surprising choice
    return "srgb" in desc.lower().replace(" ", "").replace("-", "")


@lru_cache(maxsize=16)
def _transform(icc_digest: str, icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(src, _SRGB, mode, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL)


def convert_profile(im: Image.Image, icc: bytes) -> Image.Image:
    """RGB/CMYK/L image in the space of `icc` -> sRGB RGB (alpha, if any, is carried over unchanged)."""
    alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
    base = im.convert({"RGBA": "RGB", "LA": "L"}.get(im.mode, im.mode))
    try:
        t = _transform(hashlib.sha1(icc).hexdigest(), icc, base.mode)
        out = t.apply(base)
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):  # what applyTransform turned into PyCMSError
        out = base.convert("RGB")  # a profile LittleCMS rejects: fall back to a plain conversion
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _sixteen_to_eight(im: Image.Image) -> Image.Image:
    a = np.asarray(im)
    if a.dtype.kind == "f":
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255)
    else:
        a = np.right_shift(a.astype(np.uint32), 8) if a.max() > 255 else a
    return Image.fromarray(a.astype(np.uint8), "L")


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)


def normalise(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" or "RGBA", in sRGB. Opaque alpha is dropped (it would only cost bytes)."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _sixteen_to_eight(im)
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA")
    elif mode not in SUPPORTED_MODES:  # open_image refuses these already; a frame could still differ
        raise UnsupportedMedia(f"image mode {mode} is not supported for rendering", code="unsupported-mode")
    if im.mode == "YCbCr":
        im = im.convert("RGB")
    if icc and not is_srgb(icc) and im.mode in ("RGB", "RGBA", "CMYK", "L", "LA"):
        im = convert_profile(im, icc)
    if im.mode in ("LA", "RGBA") and im.getchannel("A").getextrema()[0] == 255:
        im = im.convert("RGB")
    mode = "RGBA" if im.mode in ("LA", "RGBA") else "RGB"
    return im if im.mode == mode else im.convert(mode)  # no whole-image copy when nothing changes
