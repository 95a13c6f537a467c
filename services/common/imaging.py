"""Opening images safely: pixel limits checked from the header before any decoding."""
from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from . import heif
from .errors import CorruptMedia, LimitExceeded

heif.register()  # HEIC/HEIF for every stage that opens images through here


def open_image(raw: bytes, max_pixels: int) -> Image.Image:
    """Open lazily and check the pixel count from the header, before anything is decoded."""
    # Pillow's own bomb check reads the same header; aligned with our setting, so an image is
    # refused at one threshold with one message that names it.
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(raw))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise LimitExceeded(f"image too large: {exc} (MAX_IMAGE_PIXELS={max_pixels})", code="too-many-pixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise CorruptMedia(f"cannot read image: {exc}", code="corrupt-image") from None
    im = heif.primary_only(im)
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
