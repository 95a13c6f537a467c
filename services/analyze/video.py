"""Video analysis: the container's facts (probe), then one threaded decoding pass that finds the shots.

Limits from the header are checked before any frame is decoded; the decoded frame count, the
presentation time and the time budget are checked again while decoding, since a header can lie.
Every time is the frame's PTS on the player's clock (an edit-list start delay included).
The whole file is one span of segmented.py (a long video is analysed span by span, then merged).
"""
from __future__ import annotations

from ..media.budget import Budget
from ..media.video import VideoLimits
from . import segmented

DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320


def analyze_video(source, suffix: str, max_seconds: float, max_frames: int, *, budget: Budget | None = None,
                  max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS, threads: int = 0) -> dict:
    """`source`: a path, the file's bytes, or a binary file object."""
    budget = budget or Budget.unlimited()
    limits = VideoLimits(max_seconds, max_frames, max_frame_pixels)
    with segmented.open_video(source, threads) as video:
        video.check_header(limits)
        facts = segmented.file_facts(video, suffix)
        span = segmented.span_of(video, None, None, 0.0, limits, budget=budget)
    return segmented.merge(facts, [span])
