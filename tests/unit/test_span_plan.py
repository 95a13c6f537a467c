"""The segment plan: spans start on keyframes, about VIDEO_SEGMENT_SECONDS long, and a video that
is split anyway starts with a short span (VIDEO_FIRST_SEGMENT_SECONDS), so it plays sooner."""
from __future__ import annotations

import pytest

from services.common.errors import OverLimit
from services.media.spans import plan

KEYS_2S = [2.0 * i for i in range(300)]  # a phone's keyframe every 2 s over 10 minutes


def bounds(spans) -> list[tuple[float, float]]:
    return [(s.start_s, s.end_s) for s in spans]


def test_spans_start_on_keyframes_about_the_target_apart():
    spans = bounds(plan(KEYS_2S, 0.0, 600.0, 15, 300))
    assert spans[0] == (0.0, 16.0) and spans[1] == (16.0, 30.0) and spans[-1][1] == 600.0
    assert all(a in KEYS_2S for a, _ in spans) and len(spans) == 40


def test_a_split_video_starts_with_a_short_span_then_counts_its_segments_from_there():
    spans = bounds(plan(KEYS_2S, 0.0, 600.0, 15, 300, first_s=4))
    assert spans[0] == (0.0, 4.0)
    assert spans[1] == (4.0, 20.0)  # the next boundary one target after the first span's end
    assert all(b - a <= 16.0 for a, b in spans[1:-1]) and spans[-1][1] == 600.0
    assert all(a in KEYS_2S for a, _ in spans)


def test_the_short_first_span_ends_at_the_first_keyframe_at_or_after_it():
    keys = [0.0, 3.0, 7.5, 11.0, 20.0, 30.0, 40.0]
    assert bounds(plan(keys, 0.0, 45.0, 10, 100, first_s=4))[0] == (0.0, 7.5)


def test_a_video_that_is_not_split_keeps_one_span():
    assert bounds(plan(KEYS_2S[:7], 0.0, 12.0, 15, 300, first_s=4)) == [(0.0, 12.0)]


def test_the_segment_limit_counts_the_first_span():
    with pytest.raises(OverLimit, match="VIDEO_MAX_SEGMENTS"):
        plan(KEYS_2S, 0.0, 600.0, 15, 40, first_s=4)
