"""Decoding for rendering: as small as the largest rendition allows, in stored orientation.

Colour JPEGs and RGB(A) PNGs (the common cases) are decoded by OpenCV straight into a
3-byte-per-pixel array, JPEGs at 1/2, 1/4 or 1/8 scale when the largest rendition allows
(libjpeg DCT scaling); their ICC profile, if not sRGB, is applied after the first shrink.
Pillow would hold 4 bytes per pixel: for a 24 MP photo that is 96 MB instead of 72 MB, and
the 512 MiB instance budget counts. Pillow still reads every header (orientation, profile,
pixel limit). Everything else (TIFF, GIF, WebP, CMYK, greyscale, palette, 16-bit greyscale...)
is decoded by Pillow, with its mode and ICC profile normalised first.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..media.decoding import decoding
from ..media.firstframe import first_webp_frame
from ..media.imaging import decodable, describe, load_checked, open_image
from ..media.orientation import TRANSPOSED, left_to_apply, upright_size_of
from .colour import is_srgb, normalise

# Reduced-scale flags without their BGR bit, so IMREAD_COLOR_RGB can be added (no BGR->RGB pass).
PILLOW_JPEG_ABOVE = 16_000_000  # pixels: above, full-size JPEG decodes and RGBA PNGs go through Pillow
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


@dataclass
class Decoded:
    pixels: np.ndarray | None  # H x W x 3 (RGB) or 4 (RGBA), uint8, as decoded (`orientation` still to apply)
    image: Image.Image | None  # or a decoded Pillow RGB(A) image (big JPEGs, 16-bit PNGs), shrunk band by band
    orientation: int  # EXIF 1..8 still to apply (1 for a TIFF Pillow turned itself)
    icc: bytes | None  # a non-sRGB profile still to apply (fast path: applied after the first shrink)
    upright: tuple[int, int]  # full-resolution upright size (width, height)


def reduction(stored: tuple[int, int], need: tuple[int, int]) -> int:
    """Largest JPEG DCT scale 1/k whose output still covers `need` (stored orientation)."""
    for k in (8, 4, 2):
        if -(-stored[0] // k) >= need[0] and -(-stored[1] // k) >= need[1]:
            return k
    return 1


def decode(raw: bytes, max_pixels: int, need_upright: tuple[int, int]) -> Decoded:
    """Decode at the smallest size that still covers `need_upright` (width, height, upright)."""
    raw = decodable(raw)  # a JPEG cut short: both decoders read it with its end marker restored
    im = open_image(raw, max_pixels)
    with decoding(describe(im)):
        return _decode(raw, im, need_upright, max_pixels)


def _decode(raw: bytes, im: Image.Image, need_upright: tuple[int, int], max_pixels: int) -> Decoded:
    o = left_to_apply(im)  # a TIFF comes out of Pillow's load already turned
    size = upright_size_of(im)
    need = (need_upright[1], need_upright[0]) if o in TRANSPOSED else need_upright
    icc = im.info.get("icc_profile")
    pending_icc = None if is_srgb(icc) else icc
    if im.format == "JPEG" and im.mode == "RGB":
        k = reduction(im.size, need)
        if k == 1 and im.width * im.height > PILLOW_JPEG_ABOVE:
            # Full-size decode of a big photo: Pillow decodes in place (4 B/px), OpenCV into a
            # temporary it then copies (2 x 3 B/px at the peak): 96 MB against 144 MB for 24 MP.
            load_checked(im)
            return Decoded(None, im, o, pending_icc, size)
        im.close()
        arr = cv2.imdecode(np.frombuffer(raw, np.uint8), _REDUCED[k] | cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None:
            return Decoded(arr, None, o, pending_icc, size)
        im = open_image(raw, max_pixels)  # OpenCV says only "no image": Pillow decodes it, or names the problem
    elif im.format == "PNG" and im.mode in ("RGB", "RGBA") and not getattr(im, "is_animated", False):
        if raw[24:25] == b"\x10" or (im.mode == "RGBA" and im.width * im.height > PILLOW_JPEG_ABOVE):
            # 16-bit, or big with alpha: Pillow decodes into 4 B/px (16-bit samples straight into
            # 8 bits), then it is shrunk band by band; OpenCV holds a temporary and its copy (8 B/px
            # for RGBA, 16 for 16-bit RGBA). Big 8-bit RGB stays with OpenCV: 6 B/px against
            # Pillow's 4, but a 100 MP decode and first shrink take 3.3 s there against 4.7 s.
            load_checked(im)
            return Decoded(None, im, o, pending_icc, size)
        im.close()
        arr = _png(raw)
        if arr is not None:
            return Decoded(arr, None, o, pending_icc, size)
        im = open_image(raw, max_pixels)  # as above
    if im.format == "JPEG":
        im.draft(im.mode, need)  # greyscale and CMYK JPEGs: still DCT-scaled
    if im.format == "WEBP" and getattr(im, "n_frames", 1) > 1:
        first = first_webp_frame(raw, im.size)  # not through the animation decoder's two canvases
        if first is not None:
            first.info["icc_profile"] = icc
            im = first
    load_checked(im)
    norm = normalise(im)
    if norm.mode in ("RGB", "RGBA") and norm.width * norm.height > PILLOW_JPEG_ABOVE:
        return Decoded(None, norm, o, None, size)  # shrunk band by band: no whole-frame array copy
    arr = np.asarray(norm)
    return Decoded(arr, None, o, None, size)


def _png(raw: bytes) -> np.ndarray | None:
    """8/16-bit RGB(A) PNG through OpenCV's libpng: ~1.7x faster than Pillow's, 3 bytes a pixel."""
    arr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None or arr.ndim != 3:
        return None
    if arr.dtype == np.uint16:  # (16-bit PNGs normally go through Pillow, see decode)
        arr = np.right_shift(arr, 8).astype(np.uint8)
    if arr.shape[2] == 4:
        if arr[..., 3].min() == 255:  # opaque alpha only costs bytes
            return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA, dst=arr)  # in place: 4 B/px, not 8
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)
