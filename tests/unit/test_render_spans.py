"""Poster, stills and storyboard made per segment (render fan-out) are the whole video's, picture for picture.

Small clips from tests/support/videoset.py with an IDR every 0.5 s, planned into ~1 s segments: each segment
serves its moments from its own frames (render_moments), the fan-in picks the poster and composes the
sprite from the segments' tile strips; the result must equal render_video's over the whole file: the
same frames chosen (identical encoded bytes), the same sprite layout and pixels, the same WebVTT.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from services.analyze.video import analyze_video
from services.media.spans import Span, plan_file
from services.media.video import VideoFile
from services.render.presets import load
from services.render.video import (
    Moment,
    assign,
    collect_renditions,
    compose_storyboard,
    moments,
    render_moments,
    render_video,
    storyboard_for,
)
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SIZE = (320, 180)
BOARD = {"tile_width": 96, "columns": 4, "interval_s": 0.5, "max_tiles": 100}
MAX_STILLS, QUALITY = 50, 75


def write(tmp_path, clip: ClipSpec) -> str:
    path = tmp_path / f"{clip.name}.mp4"
    write_clip(clip, path, clip.size or SIZE, preset="ultrafast", keyframes_every_s=0.5)
    return str(path)


def whole(path: str, analysis: dict):
    cat = load()
    return render_video(path, ".mp4", analysis, poster=cat.poster, still=cat.still, encoders=cat.encoders, **BOARD,
                        max_stills=MAX_STILLS, storyboard_quality=QUALITY)


def by_segments(path: str, analysis: dict, segments: list[Span]):
    """What the render fan-out does: moments assigned at fan-out, one bounded child per segment, fan-in."""
    cat = load()
    board = storyboard_for(analysis, **BOARD)
    per_segment = assign(moments(analysis, board, MAX_STILLS), segments)
    results = []
    for seg, wanted in zip(segments, per_segment, strict=True):
        wanted = [Moment.from_dict(m.as_dict()) for m in wanted]  # as the segment message carries them
        out = render_moments(path, seg.start_s, seg.end_s, wanted, poster=cat.poster, still=cat.still, encoders=cat.encoders,
                             tile=board.tile)
        results.append(pickle.loads(pickle.dumps(out)))  # back from the bounded child
    return collect_renditions(results), compose_storyboard(board, [r["tiles"] for r in results], QUALITY), results


def segments_of(path: str, target_s: float) -> list[Span]:
    with VideoFile(path) as v:
        return plan_file(v, target_s, 100)


def assert_same(a, b):
    (ra, sa), (rb, sb) = a, b[:2]
    assert [(r.preset, r.format, r.size, r.extra) for r in ra] == [(r.preset, r.format, r.size, r.extra) for r in rb]
    assert [r.data for r in ra] == [r.data for r in rb]  # the same frames, encoded the same
    assert (sa.size, sa.tile, sa.columns, sa.rows, sa.tiles, sa.interval_s) == (sb.size, sb.tile, sb.columns, sb.rows,
                                                                                  sb.tiles, sb.interval_s)
    assert sa.vtt == sb.vtt
    assert sa.sprite == sb.sprite  # every tile the same pixels, in the same place


@pytest.fixture(scope="module")
def shots_clip(tmp_path_factory):
    clip = ClipSpec("spans-shots", [ShotSpec("coffee", 30), ShotSpec("rocket", 40, "pan", 4), ShotSpec("chelsea", 26),
                                    ShotSpec("camera", 34)], SIZE)
    path = write(tmp_path_factory.mktemp("spans"), clip)
    return path, analyze_video(Path(path).read_bytes(), ".mp4", 600, 36000)


def test_stills_poster_and_storyboard_from_segments_equal_the_whole_videos(shots_clip):
    path, analysis = shots_clip
    segments = segments_of(path, 1.0)
    assert len(segments) >= 4
    got = by_segments(path, analysis, segments)
    want = whole(path, analysis)
    assert_same(want, got)
    renditions, board, results = got
    assert len([r for r in renditions if r.preset == "still"]) == len(load().still.formats) * len(analysis["shots"])
    # The work was spread: stills and tiles came from several segments, the poster from exactly one.
    assert sum(1 for r in results if r["stills"]) >= 2 and sum(1 for r in results if r["tiles"]) == len(segments)
    assert sum(1 for r in results if r["poster"]) == 1
    [poster] = [r["poster"] for r in results if r["poster"]]  # it stands for the video in the near-duplicate index
    assert len(poster["phash"]) == 16 and len(poster["placeholders"]["blurhash"]) == 28


def test_v1_analysis_poster_candidates_across_segments_pick_the_whole_videos_frame(tmp_path):
    # A fade in from black: the sharpest of the five candidates in the first tenth is a late one, in a later segment.
    clip = ClipSpec("spans-fade-in", [ShotSpec("astronaut", 72, join="fade"), ShotSpec("coins", 72)], SIZE, vfr=True)
    path = write(tmp_path, clip)
    with VideoFile(path) as v:
        analysis = {"format": "mp4", "width": 320, "height": 180, "start_s": v.start_s(), "duration_s": v.duration_s()}
    segments = segments_of(path, 0.2)
    got = by_segments(path, analysis, segments)
    want = whole(path, analysis)
    assert_same(want, got)
    [poster] = [r for r in want[0] if r.preset == "poster" and r.format == "jpeg"]
    assert poster.extra["time_ms"] >= segments[1].start_s * 1000  # not the first segment's candidate
    assert sum(1 for r in got[2] if r["poster"]) >= 2  # several segments offered a candidate
    [still] = [r for r in want[0] if r.preset == "still" and r.format == "jpeg"]
    assert still.extra == {"shot": 0, "time_ms": poster.extra["time_ms"]}  # the one shot shows the poster


def test_rotated_vfr_clip_with_moments_on_and_next_to_boundaries(tmp_path):
    clip = ClipSpec("spans-rotated", [ShotSpec("coffee", 36), ShotSpec("camera", 36), ShotSpec("chelsea", 36)], SIZE,
                    rotation=90, vfr=True, audio=True)
    path = write(tmp_path, clip)
    analysis = analyze_video(Path(path).read_bytes(), ".mp4", 600, 36000)
    assert (analysis["width"], analysis["height"], analysis["rotation"]) == (*SIZE, 90)  # stored turned, shown upright
    segments = segments_of(path, 1.0)
    b = round(segments[1].start_s * 1000)
    # Keyframes exactly on a boundary, a millisecond before it, and one past the last frame.
    analysis["shots"] = [{"start_ms": 0, "end_ms": b, "keyframe_ms": b - 1, "visual_score": 0.2},
                         {"start_ms": b, "end_ms": 2 * b, "keyframe_ms": b, "visual_score": 0.9},
                         {"start_ms": 2 * b, "end_ms": 5000, "keyframe_ms": 5000, "visual_score": 0.1}]
    got = by_segments(path, analysis, segments)
    assert_same(whole(path, analysis), got)
    renditions, board, results = got
    assert board.tile == (96, 54) and renditions[0].size[0] > renditions[0].size[1]  # upright pictures
    shots_of_segment = [[r.extra["shot"] for r in res["stills"] if r.format == "jpeg"] for res in results]
    assert shots_of_segment[0] == [0] and shots_of_segment[1] == [1] and shots_of_segment[-1] == [2]
    assert results[1]["poster"]["time_ms"] == b


def test_moments_go_to_the_segment_whose_frames_are_shown_then():
    segs = [Span(0, 0.0, 1.0), Span(1, 1.0, 2.5), Span(2, 2.5, 4.0)]
    ms = [Moment(-40, "candidate", 0), Moment(999, "still", 0), Moment(999.6, "tile", 1), Moment(1000, "still", 1),
          Moment(2499, "tile", 2), Moment(2500, "tile", 3), Moment(9000, "still", 2)]
    assert [[(m.what, m.i) for m in part] for part in assign(ms, segs)] == [
        [("candidate", 0), ("still", 0)],
        [("tile", 1), ("still", 1), ("tile", 2)],  # within half a millisecond of a boundary: the later segment
        [("tile", 3), ("still", 2)],  # past the end: the last segment's last frame
    ]


def test_a_segment_without_moments_decodes_nothing():
    cat = load()
    out = render_moments("/nonexistent.mp4", 1.0, 2.0, [], poster=cat.poster, still=cat.still, encoders=cat.encoders,
                         tile=(96, 54))
    assert out == {"stills": [], "poster": None, "tiles": None}
