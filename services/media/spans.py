"""The span plan of a video: spans that start on keyframes, planned from the packet index.
Each span is the work of one segment of the fan-out (services/pipeline/handon.py).

A video longer than VIDEO_SEGMENT_SECONDS is cut into spans [start_s, end_s) on the player's
clock; each span starts on a keyframe, so a worker seeks straight to it and decodes nothing
twice. Boundary i is the first keyframe at or after start + i x target (a grid, so a long
GOP delays one boundary without shifting the rest); a tail shorter than half the target joins
the segment before it. A short video is one segment: no fan-out, no overhead.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..common.errors import OverLimit


@dataclass(frozen=True)
class Span:
    index: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return asdict(self)


def plan(keyframes: list[float], start_s: float, end_s: float, target_s: float, max_segments: int, *,
         first_s: float = 0) -> list[Span]:
    """Spans covering [start_s, end_s), each starting on one of `keyframes` (sorted seconds).

    `first_s` (> 0): a video that is split anyway gets a short first span, ending at the first
    keyframe at or after it, and the later boundaries are counted from there: span 0 is what a
    player needs first, so the video plays (EVENT playlists, `playable`) as soon as its short
    render is stored, instead of after a whole segment's."""
    first = first_s if 0 < first_s < target_s and end_s - start_s > target_s else 0
    bounds = [start_s]
    origin, step = start_s, 1
    for k in keyframes:
        if first and len(bounds) == 1:
            if k > start_s and k >= start_s + first - 1e-6:
                bounds.append(k)
                origin = k
            continue
        if k <= bounds[-1] or end_s - k < target_s / 2:
            continue
        if k >= origin + step * target_s - 1e-6:
            bounds.append(k)
            step = max(step + 1, int((k - origin) / target_s) + 1)
    spans = list(zip(bounds, bounds[1:] + [end_s], strict=True))
    if len(spans) > max_segments:
        raise OverLimit(f"the video would need {len(spans)} segments of VIDEO_SEGMENT_SECONDS={target_s:g}, over "
                        f"VIDEO_MAX_SEGMENTS={max_segments}", "VIDEO_MAX_SEGMENTS", "too-many-segments")
    return [Span(i, round(a, 6), round(b, 6)) for i, (a, b) in enumerate(spans)]


def plan_file(video, target_s: float, max_segments: int, index=None, first_s: float = 0) -> list[Span]:
    """The plan of an open VideoFile (before any decoding), from its packet index (read here unless given)."""
    index = index or video.packet_index()
    keys, end = index.keyframes, index.video_end_s
    start = keys[0] if keys else video.start_s()
    return plan(keys, start, end, target_s, max_segments, first_s=first_s)
