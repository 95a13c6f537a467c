"""Output formats: Pillow encoder arguments, content types, and the start-up check that each can be written."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .colour import SRGB_PROFILE


@dataclass(frozen=True)
class Format:
    name: str
    pillow: str
    extension: str
    content_type: str
    alpha: bool  # can carry transparency


FORMATS = {
    "jpeg": Format("jpeg", "JPEG", "jpg", "image/jpeg", False),
    "webp": Format("webp", "WEBP", "webp", "image/webp", True),
    "avif": Format("avif", "AVIF", "avif", "image/avif", True),
}
CACHE_CONTROL = "public, max-age=31536000, immutable"  # names are per job+preset: never rewritten


class FormatUnavailable(RuntimeError):
    """A configured format the installed Pillow cannot write."""


def check_writable(formats: set[str]) -> None:
    """Encode an 8x8 image in every configured format; raise naming each one that fails."""
    missing = []
    probe = Image.new("RGB", (8, 8), (128, 64, 32))
    for fmt in sorted(formats):
        try:
            buf = io.BytesIO()
            probe.save(buf, FORMATS[fmt].pillow)
        except (KeyError, OSError, ValueError) as exc:
            missing.append(f"{fmt} ({exc or type(exc).__name__})")
    if missing:
        raise FormatUnavailable(
            f"the installed Pillow {Image.__version__} cannot write: {', '.join(missing)}; "
            "remove these formats from the presets file or install a Pillow built with them"
        )


def flatten(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Alpha-composite an RGBA array onto a solid colour (JPEG has no alpha)."""
    a = rgba[..., 3:4].astype(np.uint16)
    bg = np.asarray(background, np.uint16)
    out = (rgba[..., :3].astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def to_pillow(arr: np.ndarray, fmt: str, background: tuple[int, int, int]) -> Image.Image:
    if arr.shape[2] == 4 and not FORMATS[fmt].alpha:
        arr = flatten(arr, background)
    return Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")


def save_args(fmt: str, quality: int, effort: dict) -> dict:
    """Pillow save() arguments. Nothing from the source is passed on: no EXIF, XMP or comments,
    only the small sRGB profile so colour-managed viewers need not guess."""
    args = {"format": FORMATS[fmt].pillow, "quality": quality, "icc_profile": SRGB_PROFILE}
    if fmt == "jpeg":
        args |= {"progressive": True, "optimize": True, "subsampling": "4:2:0"} | effort
    elif fmt == "webp":
        args |= {"method": 4} | effort
    elif fmt == "avif":
        args |= {"speed": 8} | effort
    return args


def encode(im: Image.Image, fmt: str, quality: int, effort: dict) -> bytes:
    buf = io.BytesIO()
    im.save(buf, **save_args(fmt, quality, effort))
    return buf.getvalue()
