"""The EXIF subset analyze publishes. GPS is read only to say whether a location exists: never republished."""
from __future__ import annotations

import re

from PIL import Image

from ..media.orientation import ORIENTATION_TAG, exif_of, orientation_value

MAKE = 0x010F
MODEL = 0x0110
DATETIME = 0x0132
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME_ORIGINAL = 0x9003
DATETIME_DIGITIZED = 0x9004
OFFSET_TIME_ORIGINAL = 0x9011
MAX_TEXT = 64

_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:MAX_TEXT] or None


def _iso_datetime(value, offset) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' (+ optional OffsetTime) as ISO 8601; None when absent or malformed."""
    m = _EXIF_DATE.match(_text(value) or "")
    if not m or m.group(1) == "0000":
        return None
    year, month, day, hh, mm, ss = m.groups()
    iso = f"{year}-{month}-{day}T{hh}:{mm}:{ss}"
    offset = _text(offset)
    return iso + offset if offset and _OFFSET.match(offset) else iso


def exif_subset(im: Image.Image) -> dict:
    """Read from the header only (call inside the decoder guard: a damaged EXIF block raises there)."""
    exif = exif_of(im)
    sub = exif.get_ifd(EXIF_IFD) if EXIF_IFD in exif else {}
    gps = exif.get_ifd(GPS_IFD) if GPS_IFD in exif else {}
    captured = sub.get(DATETIME_ORIGINAL) or sub.get(DATETIME_DIGITIZED) or exif.get(DATETIME)
    return {
        "orientation": orientation_value(exif.get(ORIENTATION_TAG, 1), exif.endian),
        "captured_at": _iso_datetime(captured, sub.get(OFFSET_TIME_ORIGINAL)),
        "make": _text(exif.get(MAKE)),
        "model": _text(exif.get(MODEL)),
        # Latitude/longitude present: say so, never what they are.
        "has_location": bool(gps) and (2 in gps or 4 in gps),
    }
