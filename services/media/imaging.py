"""Opening images safely: every Pillow call behind the decoder guard, limits checked from the header.

What both stages agree on lives here: the pixel limit, the colour modes we render, the TIFF
codecs the installed libtiff really decodes, how a truncated JPEG is read, and how the
frames of a multi-frame image are walked.
"""
from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from functools import cache

from PIL import Image, UnidentifiedImageError

from ..common.errors import CorruptMedia, LimitExceeded, UnsupportedMedia
from . import heif
from .decoding import decoding, set_pixel_limit
from .mediatypes import sniff

heif.register()  # HEIC/HEIF for every stage that opens images through here

# Modes render turns into 8-bit sRGB (services/render/colour.py normalise); others are refused at open.
SUPPORTED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr",
                             "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Formats whose frames are an animation (TIFF pages and MPO views are frames too, but not one).
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP", "AVIF")
# TIFF codecs libtiff builds often leave out; each is probed once (write + read a tiny image).
OPTIONAL_TIFF_CODECS = ("webp", "zstd", "lzma")
JPEG_EOI = b"\xff\xd9"
_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7
# Pillow warns (it does not refuse) between MAX_IMAGE_PIXELS and twice that; set_pixel_limit puts
# its refusal at our setting, and our own check runs first: the warning says nothing new.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def describe(im: Image.Image) -> str:
    return f"the {im.format} image" if im.format else "the image"


def jpeg_pixel_data(raw: bytes) -> str:
    """'complete', 'truncated' (pixel data present, no end marker) or 'none' (the file stops at or before its scan)."""
    pos = 2
    while pos + 4 <= len(raw):
        if raw[pos] != 0xFF:
            return "complete"  # not a segment we can walk: leave judging to the decoder
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image before any scan
            return "none"
        if marker in _STANDALONE:  # markers without a length field
            pos += 2
            continue
        length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        if marker == 0xDA:  # start of scan: entropy-coded data follows its header
            start = pos + 2 + length
            if start >= len(raw) or raw[start:start + 2] == JPEG_EOI:
                return "none"
            return "complete" if raw.rfind(JPEG_EOI) >= start else "truncated"
        pos += 2 + length
    return "none"


def decodable(raw: bytes) -> bytes:
    """The bytes decoders should read. A JPEG cut short gets its end marker, so libjpeg fills the
    missing rows (as browsers show it, and as Pillow's LOAD_TRUNCATED_IMAGES does, but per file
    rather than process-wide); a JPEG with no pixel data at all is refused."""
    if not raw.startswith(b"\xff\xd8\xff"):
        return raw
    state = jpeg_pixel_data(raw)
    if state == "none":
        raise CorruptMedia("the JPEG file has no pixel data: it ends at or before the start of its image data",
                           code="corrupt-image")
    return raw + JPEG_EOI if state == "truncated" else raw


def is_truncated(raw: bytes) -> bool:
    return raw.startswith(b"\xff\xd8\xff") and jpeg_pixel_data(raw) == "truncated"



def open_image(raw: bytes, max_pixels: int) -> Image.Image:
    """Open lazily and check the pixel count, mode and codec from the header, before anything is decoded."""
    set_pixel_limit(max_pixels)
    raw = decodable(raw)
    sniffed = sniff(raw[:64])
    with decoding(f"the {sniffed.content_type.split('/')[1].upper()} image" if sniffed else "the image"):
        try:
            im: Image.Image = Image.open(io.BytesIO(raw))
        except UnidentifiedImageError:
            _why_unidentified(raw)  # raises the format plugin's own complaint, when one claims the file
            raise
        im = heif.primary_only(im)
    if im.width * im.height > max_pixels:
        raise LimitExceeded(
            f"{describe(im)} is {im.width}x{im.height} = {im.width * im.height} pixels, over MAX_IMAGE_PIXELS={max_pixels}",
            code="too-many-pixels",
        )
    if im.mode not in SUPPORTED_MODES:
        raise UnsupportedMedia(f"{describe(im)} uses colour mode {im.mode}, which is not supported", code="unsupported-mode")
    if im.format == "TIFF":
        codec = im.info.get("compression", "raw")
        if codec in OPTIONAL_TIFF_CODECS and not tiff_codec_available(codec):
            raise UnsupportedMedia(f"the TIFF image uses {codec} compression, which is not supported here",
                                   code="unsupported-compression")
    return im


def _why_unidentified(raw: bytes) -> None:
    """Pillow's open() hides each plugin's reason behind 'cannot identify image file <repr>':
    ask the one plugin that accepts these first bytes, so the reason names the real problem."""
    prefix = raw[:16]
    for factory, accept in list(Image.OPEN.values()):
        try:
            claims = accept(prefix) if accept is not None else False
        except Exception:  # noqa: BLE001 - a plugin's sniffing choking on a short prefix: not its file
            continue
        if claims and not isinstance(claims, str):
            factory(io.BytesIO(raw), "")  # raises the plugin's SyntaxError / OSError inside the guard
            return


def load_checked(im: Image.Image) -> None:
    with decoding(describe(im)):
        im.load()


def frames(im: Image.Image, limit: int | None = None) -> Iterator[Image.Image]:
    """Each frame of a multi-frame image, decoded (durations of WebP/AVIF frames exist only after
    load), every seek and load behind the guard with the frame's number in the reason."""
    i = 0
    while limit is None or i < limit:
        with decoding(f"frame {i + 1} of {describe(im)}"):
            try:
                im.seek(i)
            except EOFError:
                return
            im.load()
        yield im
        i += 1


def frame_count(im: Image.Image) -> int:
    with decoding(describe(im)):
        return int(getattr(im, "n_frames", 1) or 1)


@cache
def tiff_codec_available(codec: str) -> bool:
    try:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "TIFF", compression=codec)
        Image.open(io.BytesIO(buf.getvalue())).load()
    except Exception:  # noqa: BLE001 - any failure means this libtiff cannot do it
        return False
    return True
