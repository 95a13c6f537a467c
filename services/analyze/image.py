"""Image analysis: format, upright dimensions, mean colour, from a reduced-scale decode."""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageStat, UnidentifiedImageError

from ..common.errors import CorruptMedia, LimitExceeded

ORIENTATION_TAG = 0x0112
# Orientations 5-8 are rotated by 90 or 270 degrees: width and height swap when upright.
TRANSPOSED = (5, 6, 7, 8)
ANALYSIS_EDGE = 256


def open_image(raw: bytes, max_pixels: int) -> Image.Image:
    """Open lazily and check the pixel count from the header, before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(raw))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise LimitExceeded(f"image too large: {exc}", code="too-many-pixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise CorruptMedia(f"cannot read image: {exc}", code="corrupt-image") from None
    if im.width * im.height > max_pixels:
        raise LimitExceeded(
            f"image has {im.width}x{im.height} = {im.width * im.height} pixels, over MAX_IMAGE_PIXELS={max_pixels}",
            code="too-many-pixels",
        )
    return im


def load_checked(im: Image.Image) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMedia(f"cannot decode image: {exc}", code="corrupt-image") from None


def analyze_image(raw: bytes, max_pixels: int) -> dict:
    im = open_image(raw, max_pixels)
    fmt = (im.format or "unknown").lower()
    orientation = int(im.getexif().get(ORIENTATION_TAG, 1) or 1)
    if orientation not in range(1, 9):
        orientation = 1
    width, height = (im.height, im.width) if orientation in TRANSPOSED else (im.width, im.height)
    im.draft("RGB", (ANALYSIS_EDGE, ANALYSIS_EDGE))  # JPEG: DCT-scaled decode, far less work
    load_checked(im)
    small = im.convert("RGB")
    small.thumbnail((ANALYSIS_EDGE, ANALYSIS_EDGE))
    mean = [int(round(c)) for c in ImageStat.Stat(small).mean[:3]]
    return {"format": fmt, "width": width, "height": height, "orientation": orientation, "mean_color": mean}
