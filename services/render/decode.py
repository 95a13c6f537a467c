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

from ..common.errors import CorruptMedia
from ..common.firstframe import first_webp_frame
from ..common.imaging import load_checked, open_image
from .colour import is_srgb, normalise

ORIENTATION_TAG = 0x0112
TRANSPOSED = (5, 6, 7, 8)  # rotated a quarter turn: stored width is the upright height
# Reduced-scale flags without their BGR bit, so IMREAD_COLOR_RGB can be added (no BGR->RGB pass).
PILLOW_JPEG_ABOVE = 16_000_000  # pixels: above, full-size JPEG decodes and RGBA PNGs go through Pillow
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


@dataclass
class Decoded:
    pixels: np.ndarray | None  # H x W x 3 (RGB) or 4 (RGBA), uint8, stored orientation
    image: Image.Image | None  # or a decoded Pillow RGB(A) image (big JPEGs, 16-bit PNGs), shrunk band by band
    orientation: int  # EXIF 1..8, still to apply
    icc: bytes | None  # a non-sRGB profile still to apply (fast path: applied after the first shrink)
    upright: tuple[int, int]  # full-resolution upright size (width, height)


def orientation_of(im: Image.Image) -> int:
    if im.format == "PNG":  # getexif() would decode the whole PNG looking for an eXIf chunk after the pixels
        exif = Image.Exif()
        if im.info.get("exif"):
            exif.load(im.info["exif"])
    else:
        exif = im.getexif()
    o = int(exif.get(ORIENTATION_TAG, 1) or 1)
    return o if o in range(1, 9) else 1


def upright_size(im: Image.Image, orientation: int) -> tuple[int, int]:
    return (im.height, im.width) if orientation in TRANSPOSED else (im.width, im.height)


def reduction(stored: tuple[int, int], need: tuple[int, int]) -> int:
    """Largest JPEG DCT scale 1/k whose output still covers `need` (stored orientation)."""
    for k in (8, 4, 2):
        if -(-stored[0] // k) >= need[0] and -(-stored[1] // k) >= need[1]:
            return k
    return 1


def decode(raw: bytes, max_pixels: int, need_upright: tuple[int, int]) -> Decoded:
    """Decode at the smallest size that still covers `need_upright` (width, height, upright)."""
    im = open_image(raw, max_pixels)
    o = orientation_of(im)
    size = upright_size(im, o)
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
        if arr is None:
            raise CorruptMedia("cannot decode JPEG", code="corrupt-image")
        return Decoded(arr, None, o, pending_icc, size)
    if im.format == "PNG" and im.mode in ("RGB", "RGBA") and not getattr(im, "is_animated", False):
        if raw[24:25] == b"\x10" or (im.mode == "RGBA" and im.width * im.height > PILLOW_JPEG_ABOVE):
            # 16-bit, or big with alpha: Pillow decodes into 4 B/px (16-bit samples straight into
            # 8 bits), then it is shrunk band by band; OpenCV holds a temporary and its copy (8 B/px
            # for RGBA, 16 for 16-bit RGBA). Big 8-bit RGB stays with OpenCV: 6 B/px against
            # Pillow's 4, but a 100 MP decode and first shrink take 3.3 s there against 4.7 s.
            load_checked(im)
            return Decoded(None, im, o, pending_icc, size)
        im.close()
        return Decoded(_png(raw), None, o, pending_icc, size)
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


def _png(raw: bytes) -> np.ndarray:
    """8/16-bit RGB(A) PNG through OpenCV's libpng: ~1.7x faster than Pillow's, 3 bytes a pixel."""
    arr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None or arr.ndim != 3:
        raise CorruptMedia("cannot decode PNG", code="corrupt-image")
    if arr.dtype == np.uint16:  # (16-bit PNGs normally go through Pillow, see decode)
        arr = (arr >> 8).astype(np.uint8)
    if arr.shape[2] == 4:
        if arr[..., 3].min() == 255:  # opaque alpha only costs bytes
            return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA, dst=arr)  # in place: 4 B/px, not 8
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation to an array (same result as PIL.ImageOps.exif_transpose)."""
    if orientation == 2:
        return cv2.flip(arr, 1)
    if orientation == 3:
        return cv2.rotate(arr, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(arr, 0)
    if orientation == 5:
        return cv2.transpose(arr)
    if orientation == 6:
        return cv2.rotate(arr, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(arr), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(arr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return arr
