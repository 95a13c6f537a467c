"""Segmented video analysis: spans analysed apart and merged give the whole-file analysis, boundary or not.

Clips from tests/support/videoset.py at 320x180 with IDR frames forced every 6 frames (0.25 s at 24 fps), so a
span boundary can fall anywhere: on a cut, inside a dissolve or a fade, inside a blank card.
"""
from __future__ import annotations

import functools
import json

import pytest

from services.analyze.segmented import DEFAULT_OVERLAP_S, analyze_span, detector_reach_s, file_facts, merge
from services.analyze.video import analyze_video
from services.media.spans import Span, plan_file
from services.media.video import VideoFile, VideoLimits
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SIZE = (320, 180)
EVERY = 6  # forced keyframe interval, frames

CLIPS = {
    # Fades through a black card with a logo (a card of its own, > 1 s) and through black, dissolves of
    # 0.5 s and 2 s (one over a pan), a cut, a colour-only cut.
    "gradual": ClipSpec("seg-gradual", [
        ShotSpec("astronaut", 40), ShotSpec("card-black", 34, join="dissolve", mix=12),
        ShotSpec("coffee", 48, join="dissolve", mix=12), ShotSpec("rocket", 60, "pan", 3, join="dissolve", mix=48),
        ShotSpec("chelsea", 40, join="fade"), ShotSpec("camera", 40), ShotSpec("chelsea", 36, join="dissolve", mix=24),
        ShotSpec("chelsea", 30, tint=True),
    ], SIZE),
    # Frame durations cycling 1/24, 1/30, 1/20 s: a cut, a dissolve, a fade through black, a flash.
    "vfr": ClipSpec("seg-vfr", [
        ShotSpec("coffee", 40), ShotSpec("rocket", 36, flashes=[(12, 2)]), ShotSpec("chelsea", 44, join="dissolve", mix=16),
        ShotSpec("camera", 40, join="fade"), ShotSpec("coins", 30),
    ], SIZE, vfr=True),
    # First PTS at 1 s (an edit list), sound.
    "delayed": ClipSpec("seg-delayed", [
        ShotSpec("astronaut", 30), ShotSpec("coins", 30), ShotSpec("coffee", 40, "zoom", 0.4, join="fade"),
        ShotSpec("rocket", 30),
    ], SIZE, delay_s=1.0, audio=True),
    # Slow fades (2 s ramps, the detector's longest reach): into a black card and out of it, then through
    # black with only the darkest frames blank, one fade of ~4.4 s.
    "slow-fades": ClipSpec("seg-slow-fades", [
        ShotSpec("astronaut", 30), ShotSpec("coffee", 60, lighting=(1.0, 0.0)), ShotSpec("card-black", 12),
        ShotSpec("rocket", 60, lighting=(0.0, 1.0)), ShotSpec("chelsea", 54, lighting=(1.0, 0.0)),
        ShotSpec("camera", 54, lighting=(0.0, 1.0)), ShotSpec("coins", 30),
    ], SIZE),
    # Hard cuts, a pan, flashes that are not cuts.
    "cuts": ClipSpec("seg-cuts", [
        ShotSpec("coffee", 30, flashes=[(12, 2)]), ShotSpec("rocket", 36, "pan", 3, (1, 0), (0.3, 0.5)),
        ShotSpec("astronaut", 30, "zoom", 0.5), ShotSpec("chelsea", 31, flashes=[(20, 1)]), ShotSpec("camera", 29),
    ], SIZE),
}
LIMITS = VideoLimits(600, 36000)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    made: dict[tuple[str, bool], str] = {}

    def make(name: str, forced: bool = True) -> str:
        """forced=False: libx264's own keyframes (the first frame and most scene cuts), long GOPs."""
        if (name, forced) not in made:
            clip = CLIPS[name]
            path = folder / f"{clip.name}{'' if forced else '-x264-keyframes'}.mp4"
            write_clip(clip, path, SIZE, keyframes=set(range(0, clip.frames, EVERY)) if forced else ())
            made[name, forced] = str(path)
        return made[name, forced]
    return make


def facts_of(path: str) -> dict:
    with VideoFile(path) as video:  # as the plumbing reads them when it plans
        return file_facts(video, ".mp4")


def spans_of(path: str, segments: list[Span], overlap_s: float = DEFAULT_OVERLAP_S) -> list[dict]:
    # Through JSON, as the plumbing stores them.
    return [json.loads(json.dumps(analyze_span(path, s.start_s, s.end_s, overlap_s, LIMITS))) for s in segments]


def keyframes(path: str) -> tuple[list[float], float]:
    with VideoFile(path) as video:
        return video.keyframe_times()


def split_at(path: str, *bounds: float) -> list[Span]:
    keys, end = keyframes(path)
    edges = [keys[0], *bounds, end]
    return [Span(i, round(a, 6), round(b, 6)) for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False))]


@functools.cache
def whole(path: str) -> dict:  # (not mutated by the tests)
    return analyze_video(path, ".mp4", LIMITS.max_seconds, LIMITS.max_frames)


@pytest.mark.parametrize("name", list(CLIPS))
def test_planned_segments_merge_to_the_whole_file_analysis(clip_file, name):
    path = clip_file(name)
    with VideoFile(path) as video:
        segments = plan_file(video, 1.5, 100)
    assert len(segments) >= 4
    merged = merge(facts_of(path), spans_of(path, segments))
    assert merged == whole(path)
    # The script's transitions (its lighting ramps to black found as fades), and the black card between two
    # dissolves is a shot of its own.
    assert len(merged["shots"]) == 1 + len(CLIPS[name].transitions()) + (name == "gradual")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gradual", "vfr", "slow-fades"])
def test_a_boundary_on_every_keyframe_changes_nothing(clip_file, name):
    """Spans of 0.25 s, shorter than the overlap: every keyframe is a boundary, next to every transition."""
    path = clip_file(name)
    keys, end = keyframes(path)
    assert len(keys) == -(-CLIPS[name].frames // EVERY)
    segments = split_at(path, *keys[1:])
    assert merge(facts_of(path), spans_of(path, segments)) == whole(path)


def test_a_hard_cut_exactly_on_a_boundary_is_reported_once_by_the_span_it_starts(clip_file):
    path = clip_file("cuts")
    clip = CLIPS["cuts"]
    pts = clip.pts_seconds()
    cut = next(t.start for t in clip.transitions() if t.start % EVERY == 0)  # frame 30: the pan's first frame
    before, after = spans_of(path, split_at(path, pts[cut]))
    assert before["last_s"] < pts[cut] == after["first_s"]
    assert all(tr["frame_s"] < pts[cut] for tr in before["transitions"])
    assert after["transitions"][0] == {"kind": "cut", "frame_s": pts[cut], "start_s": pts[cut], "end_s": pts[cut]}
    merged = merge(facts_of(path), [before, after])
    assert [s["start_ms"] for s in merged["shots"]].count(round(pts[cut] * 1000)) == 1
    assert merged == whole(path)


def test_a_dissolve_across_a_boundary_is_reported_once(clip_file):
    path = clip_file("gradual")
    clip = CLIPS["gradual"]
    pts = clip.pts_seconds()
    long_dissolve = next(t for t in clip.transitions() if t.kind == "dissolve" and t.end - t.start >= 40)
    middle = (long_dissolve.start + long_dissolve.end) // 2 // EVERY * EVERY
    for boundary in (middle - EVERY, middle, middle + EVERY):  # the mix point and either side of it
        spans = spans_of(path, split_at(path, pts[boundary]))
        reported = [tr for s in spans for tr in s["transitions"] if tr["kind"] == "dissolve"
                    and tr["start_s"] < pts[boundary] < tr["end_s"]]
        assert len(reported) == 1, (boundary, reported)
        merged = merge(facts_of(path), spans)
        assert merged == whole(path)
        [shot] = [s for s in merged["shots"][1:] if s["transition"]["kind"] == "dissolve"
                  and s["transition"]["start_ms"] < pts[boundary] * 1000 < s["transition"]["end_ms"]]
        assert abs(shot["transition"]["start_ms"] - pts[long_dissolve.start] * 1000) <= 3 * 1000 / 24


@pytest.mark.slow
def test_a_fade_and_a_blank_card_across_a_boundary_are_reported_once(clip_file):
    path = clip_file("gradual")
    clip = CLIPS["gradual"]
    pts = clip.pts_seconds()
    expected = whole(path)
    card = clip.transitions()[0]  # a dissolve into the black card, > 1 s, and one out of it: two fades
    fade = next(t for t in clip.transitions() if t.kind == "fade" and t.start > card.end)  # through black
    for t, count in ((card, 2), (fade, 1)):
        lo, hi = pts[t.start - 2], pts[t.end + 2]
        for boundary in range(t.start // EVERY * EVERY, t.end + 1, EVERY):
            spans = spans_of(path, split_at(path, pts[boundary]))
            found = [tr["frame_s"] for s in spans for tr in s["transitions"] if lo <= tr["frame_s"] <= hi]
            assert len(found) == count, (t, boundary, found)
            merged = merge(facts_of(path), spans)
            kinds = [s["transition"]["kind"] for s in merged["shots"][1:] if lo * 1000 <= s["start_ms"] <= hi * 1000]
            assert kinds == ["fade"] * count
            assert merged == expected


def test_times_are_absolute_with_the_edit_list_delay(clip_file):
    path = clip_file("delayed")
    clip = CLIPS["delayed"]
    pts = clip.pts_seconds()
    spans = spans_of(path, split_at(path, pts[30], pts[60]))
    assert [s["first_s"] for s in spans] == pytest.approx([1.0, pts[30], pts[60]], abs=1e-4)
    assert spans[1]["transitions"][0]["frame_s"] == pytest.approx(pts[30], abs=1e-4)  # the cut at 2.25 s, not 1.25 s
    merged = merge(facts_of(path), spans)
    assert merged["start_s"] == pytest.approx(1.0) and merged["shots"][0]["start_ms"] == 1000
    assert [s["start_ms"] for s in merged["shots"][:2]] == [1000, round(pts[30] * 1000)]
    assert merged["shots"][-1]["end_ms"] == round((pts[-1] + 1 / 24) * 1000)
    assert merged == whole(path)


def test_the_answer_does_not_depend_on_how_much_more_than_the_overlap_is_read(clip_file):
    path = clip_file("gradual")
    keys, _ = keyframes(path)
    segments = split_at(path, keys[len(keys) // 3], keys[2 * len(keys) // 3])
    short, long = spans_of(path, segments), spans_of(path, segments, DEFAULT_OVERLAP_S + 2.0)
    assert short[1]["decoded_from_s"] > long[1]["decoded_from_s"]  # more was read ...
    def found(span: dict) -> dict:
        return {k: v for k, v in span.items() if not k.startswith("decoded_")}

    assert [found(s) for s in short] == [found(s) for s in long]  # ... the same was found


def test_a_seek_landing_seconds_before_the_overlap_changes_nothing(clip_file):
    """With the encoder's own keyframes, a span's seek goes back to the keyframe before its overlap: far back."""
    path = clip_file("gradual", forced=False)
    keys, _ = keyframes(path)
    segments = split_at(path, *keys[1:])
    seek_points = [max(k for k in keys if k <= s.start_s - DEFAULT_OVERLAP_S + 1e-6) for s in segments[1:]]
    assert max(s.start_s - DEFAULT_OVERLAP_S - k for s, k in zip(segments[1:], seek_points, strict=True)) > 2.0
    assert merge(facts_of(path), spans_of(path, segments)) == whole(path)


@pytest.mark.parametrize("fps", [10, 24, 30, 60])
def test_the_default_overlap_covers_what_the_detector_reads_around_a_new_shot(fps):
    assert detector_reach_s(fps) <= DEFAULT_OVERLAP_S


def test_a_missing_span_result_is_refused_not_merged_into_a_shorter_video(clip_file):
    path = clip_file("cuts")
    spans = spans_of(path, split_at(path, *keyframes(path)[0][4:13:4]))
    with pytest.raises(ValueError, match="do not tile the video"):
        merge(facts_of(path), spans[:1] + spans[2:])
