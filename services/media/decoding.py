"""The one guard around decoder calls: what Pillow, OpenCV or PyAV raise becomes an error class.

    with decoding("the PNG image"):
        im.load()

- a decompression bomb -> LimitExceeded naming MAX_IMAGE_PIXELS;
- a valid file in a variant no installed decoder reads -> UnsupportedMedia;
- anything else a decoder raises -> CorruptMedia.
An exception raised by *our* code inside the block (its innermost frame is not in a decoder
library) passes through unchanged: it is a bug, and the stage treats it as `internal`.
Reasons are for people: the decoder's message is translated or cleaned of object reprs,
addresses, error codes and library constant names.
"""
from __future__ import annotations

import logging
import re
from contextlib import ContextDecorator

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..common.errors import CorruptMedia, LimitExceeded, MediarelayError, UnsupportedMedia

logger = logging.getLogger("mediarelay.decoding")
DECODER_PACKAGES = ("PIL", "cv2", "av")  # exceptions raised from inside these are about the file
_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of ([\d.]+)")
# Decoder messages that mean "valid, but a variant we cannot read" (BMP bitfields/compressions,
# TIFF codecs, unusual modes). Everything else a decoder raises is damage.
_UNSUPPORTED = re.compile(r"unsupported|not supported|unknown (compression|pixel mode|raw mode|mode)|"
                          r"not (yet )?implemented|no decoder|decoder .* not available|patch(es)? welcome", re.I)
# (pattern of the decoder's message, what a person reads); the first match wins.
_CORRUPT = (
    (re.compile(r"truncated|premature end|unexpected end|ran out of data|end of (file|stream)|buffer is not large enough|"
                r"unpack requires a buffer|missing frame data", re.I),
     "{what} is truncated: the file ends before its data does"),
    (re.compile(r"broken \w+ file|not an? \w+ file|invalid \w+ (file|header)|bad (magic|signature)", re.I),
     "{what} is not readable: its structure is damaged"),
    (re.compile(r"decompressed data too large|too much memory used in text chunks", re.I),
     "{what} has a metadata chunk (text or colour profile) that inflates past "
     f"{PngImagePlugin.MAX_TEXT_CHUNK / 2**20:g} MiB: refused as a decompression bomb"),
    (re.compile(r"frame sequence|sequence error|fcTL|fdAT", re.I),
     "{what}: the animation's frames are out of sequence or missing"),
    (re.compile(r"broken data stream|decoder error|incorrect (header|data) check|invalid (code|distance|block|stored)|"
                r"bad (huffman|header|checksum)|crc", re.I),
     "{what} cannot be decoded: its compressed pixel data is damaged"),
)
_NOISE = (
    re.compile(r"<[^>]*>"),  # reprs such as <_io.BytesIO object at 0x7f...>
    re.compile(r"\bb'[^']*'|\bb\"[^\"]*\""),  # bytes reprs
    re.compile(r"\b0x[0-9a-fA-F]+\b"),  # an address (not the "0x4000" inside "40000x40000")
    re.compile(r"\[Errno -?\d+\]|\b(error|code|errno) -?\d+\b", re.I),
    re.compile(r"\b\w+(ImagePlugin|ImageFile)\.\w+\b|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"),  # Pillow modules and constants
    re.compile(r"OpenCV\(.*?\)\s*\S+:\d+:\s*error:\s*\(-?\d+:[^)]*\)", re.S),  # OpenCV's source-location prefix
    re.compile(r":\s*'[^']*'\s*$"),  # FFmpeg's trailing ": '<file name>'" (a temporary path of ours)
    re.compile(r"\bhttps?://\S+"),  # a bug tracker's or a sample upload's address
    # Libraries' words to their own developers, not to the person whose file it is: FFmpeg's
    # "Not yet implemented in FFmpeg, patches welcome", "Internal bug, should not have happened",
    # "Generic error in an external library", its requests for samples and updates; libtiff's "Sorry,".
    re.compile(r"[,;]?\s*\bpatch(es)? (are )?welcome\b|\s+in (FFmpeg|libav\w*)\b|"
               r"\binternal bug\b[^.;]*|\bgeneric error in an external library\b|\bunknown error occurred\b|"
               r"[,;.]?\s*\b(please|if you want to help|update your FFmpeg|if the problem still occurs)\b[^.;]*|"
               r"^\s*sorry,\s*", re.I),
)


def set_pixel_limit(max_pixels: int) -> None:
    """Pillow refuses above twice its MAX_IMAGE_PIXELS (above once it only warns): half the
    setting puts its refusal, on any frame of any file, at our setting. Pillow declares an int:
    an odd setting rounds up, one pixel of slack for Pillow (open_image checks the setting
    itself, exactly)."""
    Image.MAX_IMAGE_PIXELS = -(-max_pixels // 2)


def clean(message: str) -> str:
    for pattern in _NOISE:
        message = pattern.sub("", message)
    return re.sub(r"\s{2,}", " ", message).strip(" :;,.")


def from_decoder(exc: BaseException) -> bool:
    """Raised inside a decoder library (by type, or by the frame it was raised in)."""
    if type(exc).__module__.split(".")[0] in DECODER_PACKAGES:
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").split(".")[0] in DECODER_PACKAGES


def classify(exc: BaseException, what: str = "the image") -> MediarelayError | None:
    """The error class and reason for what a decoder raised; None when it is not the decoder's."""
    if isinstance(exc, MediarelayError):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        m = _BOMB.search(str(exc))
        size = f" is {m.group(1)} pixels," if m else ""
        limit = int(float(m.group(2))) if m else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        return LimitExceeded(f"{what}{size} over MAX_IMAGE_PIXELS={limit}", code="too-many-pixels")
    if isinstance(exc, MemoryError) or not from_decoder(exc):  # out of memory says nothing about the file
        return None
    message = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return CorruptMedia(f"{what} is not readable: its header is damaged, or it is not an image at all", code="corrupt-image")
    if isinstance(exc, EOFError):
        return CorruptMedia(f"{what} is truncated: the file ends before its data does", code="corrupt-image")
    if _UNSUPPORTED.search(message) or type(exc).__name__ in ("DecoderNotFoundError", "PatchWelcomeError"):
        detail = clean(message)
        return UnsupportedMedia(f"{what} uses a variant that is not supported" + (f" ({detail})" if detail else ""),
                                code="unsupported-variant")
    for pattern, reason in _CORRUPT:
        if pattern.search(message):
            return CorruptMedia(reason.format(what=what), code="corrupt-image")
    detail = clean(message)
    return CorruptMedia(f"{what} is damaged and cannot be decoded" + (f" ({detail})" if detail else ""), code="corrupt-image")


class decoding(ContextDecorator):  # lower case: used like a function, `with decoding(...)`
    """Context manager (and decorator) mapping decoder exceptions to error classes, see `classify`."""

    def __init__(self, what: str = "the image"):
        self.what = what

    def __enter__(self) -> decoding:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        mapped = classify(exc, self.what)
        if mapped is None or mapped is exc:
            return
        # The decoder's own words stay in the log for whoever debugs the decoder; the job gets the reason.
        logger.info("%s: decoder raised %s: %s", mapped.error_class, type(exc).__name__, exc)
        raise mapped from exc
