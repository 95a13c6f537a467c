"""What the ladder does with HDR sources (PQ or HLG): a named choice.

- "tonemap": to SDR BT.709 ...
- "passthrough": ...
"""
from __future__ import annotations

import av

from ..common.video import HDR_TRANSFERS

HDR_CHOICES = {"tonemap", "passthrough"}
MPEG_RANGE = 1


def tonemap_filters(frame: av.VideoFrame, choice: str) -> tuple[list[tuple[str, str]], dict, str | None]:
    """(filters before the split, the encoder's colour tags, what was done with HDR or None for SDR)."""
    tags = {"color_range": MPEG_RANGE}
    for k in ("color_primaries", "color_trc", "colorspace"):
        v = int(getattr(frame, k) or 2)
        if v != 2:  # unspecified stays unspecified
            tags[k] = v
    if int(frame.color_trc or 0) not in HDR_TRANSFERS:
        return [], tags, None
    return [], tags, "passthrough"
