"""EXIF orientation: read once, the same way for every stage, and applied the same way to images and arrays.

The reader sees what Pillow's getexif() sees (EXIF in JPEG/WebP/AVIF/HEIF/TIFF, and for PNG
the eXIf chunk, the ImageMagick "Raw profile type exif" text chunk and XMP's
tiff:Orientation), without PngImageFile.getexif()'s full decode to look for an eXIf chunk
stored after the pixels, and it accepts a mistyped value (ASCII "6", UNDEFINED bytes):
the camera meant it. Anything unreadable is 1 (as stored).

Pillow's TIFF reader turns TIFF pixels itself: on load (`TiffImageFile.load_end` calls
`ImageOps.exif_transpose`, Pillow >= 10.1, libtiff and Pillow's own decoders alike) and, for a
quarter turn in the tag, it reports the upright size already at open (Pillow >= 11). So what a
file declares (`orientation`) and what is left for us to apply to what Pillow decodes
(`left_to_apply`) differ for TIFF: applying the tag again turned such a picture twice.
"""
from __future__ import annotations

import io
import struct
from functools import cache

import cv2
import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112
TRANSPOSED = (5, 6, 7, 8)  # a quarter turn: the stored width is the upright height

# Each orientation as (transpose, then flip left-right, then flip top-bottom): the one table
# both the Pillow and the array forms apply, so they cannot disagree.
_STEPS = {
    1: (False, False, False), 2: (False, True, False), 3: (False, True, True), 4: (False, False, True),
    5: (True, False, False), 6: (True, True, False), 7: (True, True, True), 8: (True, False, True),
}


def exif_of(im: Image.Image) -> Image.Exif:
    """The image's EXIF (Pillow's Exif), read from the header only: nothing is decoded."""
    if im.format == "PNG":
        if "exif" not in im.info:
            late = _png_chunk_after_pixels(im, b"eXIf")
            if late is not None:
                im.info["exif"] = late
        return Image.Image.getexif(im)  # the base reader: raw profile and XMP, no decode
    return im.getexif()


def orientation_value(value, endian: str | None = "<") -> int:
    """An EXIF Orientation value as stored (int, tuple, ASCII text, UNDEFINED bytes) -> 1..8."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else 1
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00 ")
        if text.isdigit():
            value = text.decode()
        elif len(value) == 1:
            value = value[0]
        elif len(value) == 2:
            value = struct.unpack((endian or "<") + "H", value)[0]
        else:
            return 1
    if isinstance(value, str):
        value = value.strip("\x00 ")
        if not (value.isascii() and value.isdigit()):
            return 1
    try:
        o = int(value)
    except (TypeError, ValueError):
        return 1
    return o if o in _STEPS else 1


def orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8 of a lazily opened image (call inside the decoder guard)."""
    exif = exif_of(im)
    return orientation_value(exif.get(ORIENTATION_TAG, 1), exif.endian)


def left_to_apply(im: Image.Image) -> int:
    """The orientation still to apply to what Pillow decodes from `im` (read before it is loaded).
    A TIFF value Pillow knows (an int 2..8, from the tag or XMP) it applies itself on load; a
    mistyped one (ASCII "6") it leaves, and we apply it as for any other format."""
    declared = orientation(im)
    if im.format == "TIFF" and _pillow_tiff()[1] and _pillow_turns(exif_of(im).get(ORIENTATION_TAG)):
        return 1
    return declared


def upright_size_of(im: Image.Image) -> tuple[int, int]:
    """The upright (width, height) of a lazily opened image, before anything is decoded."""
    if im.format == "TIFF" and _pillow_tiff()[0] and _pillow_turns(getattr(im, "tag_v2", {}).get(ORIENTATION_TAG), TRANSPOSED):
        return im.size  # Pillow already reports it upright (not for an XMP-only value: that it applies on load only)
    return upright_size(im.size, orientation(im))


def upright_size(size: tuple[int, int], o: int) -> tuple[int, int]:
    return (size[1], size[0]) if o in TRANSPOSED else size


def _pillow_turns(value, values=(2, 3, 4, 5, 6, 7, 8)) -> bool:
    """Whether Pillow's own lookup (a dict keyed by 2..8: hash and equality) matches `value`."""
    try:
        return value in frozenset(values)
    except TypeError:  # unhashable: Pillow's lookup would not match it either
        return False


@cache
def _pillow_tiff() -> tuple[bool, bool]:
    """(upright size at open, pixels turned on load) for a TIFF tagged 6, as the installed Pillow
    does it: probed once on a 2x1 image rather than assumed from a version number."""
    buf = io.BytesIO()
    Image.new("L", (2, 1)).save(buf, "TIFF", tiffinfo={ORIENTATION_TAG: 6})
    im = Image.open(buf)
    at_open = im.size == (1, 2)
    im.load()
    return at_open, im.size == (1, 2)


def upright_image(im: Image.Image, o: int) -> Image.Image:
    transpose, flip_lr, flip_tb = _STEPS.get(o, _STEPS[1])
    if transpose:
        im = im.transpose(Image.Transpose.TRANSPOSE)
    if flip_lr:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if flip_tb:
        im = im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return im


def upright_array(arr: np.ndarray, o: int) -> np.ndarray:
    """The same turn on an H x W x C array (same result as PIL.ImageOps.exif_transpose)."""
    transpose, flip_lr, flip_tb = _STEPS.get(o, _STEPS[1])
    if transpose:
        arr = cv2.transpose(arr)
    if flip_lr and flip_tb:
        return cv2.flip(arr, -1)
    if flip_lr:
        return cv2.flip(arr, 1)
    if flip_tb:
        return cv2.flip(arr, 0)
    return arr


def _png_chunk_after_pixels(im: Image.Image, kind: bytes) -> bytes | None:
    """Walk the chunk headers (seeking over their data, nothing inflated) for a `kind` chunk."""
    fp = getattr(im, "fp", None)
    if fp is None:
        return None
    pos = fp.tell()
    try:
        fp.seek(8)
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return None
            length, found = struct.unpack(">I", head[:4])[0], head[4:]
            if found == kind:
                data = fp.read(length)
                return data if len(data) == length else None
            if found == b"IEND":
                return None
            fp.seek(length + 4, 1)
    finally:
        fp.seek(pos)
