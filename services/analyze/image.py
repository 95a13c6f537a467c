"""Image analysis: format, upright dimensions, mean colour, from a reduced-scale decode."""
from __future__ import annotations

from PIL import ImageStat

from ..common.imaging import load_checked, open_image

ORIENTATION_TAG = 0x0112
# Orientations 5-8 are rotated by 90 or 270 degrees: width and height swap when upright.
TRANSPOSED = (5, 6, 7, 8)
ANALYSIS_EDGE = 256


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
