"""A truncated video fails as corrupt-media, saying where its data ends and what its header declares.

Issue 21: a 6 s MP4 cut after its first half completed as a 3 s video, with nothing in the job saying so.
The clips are real ones (tests/support/videoset.py, with sound), remuxed with the moov atom in front as phones and
web uploads write them, then cut: the index still promises 6 s while the data stops half-way. They go
through the analyze stage's planning function (`plan_video`, the one every video job runs first, whether
it is then analysed inline or fanned out in segments), in a plan of one segment and in one of several.
"""
from __future__ import annotations

from pathlib import Path

import av
import pytest

from services.analyze.video_stage import plan_video
from services.common.errors import CorruptMedia
from services.media.budget import Budget
from services.media.video import VideoLimits
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SIZE = (320, 180)
CLIP = ClipSpec("trunc", [ShotSpec("astronaut", 48), ShotSpec("coffee", 48), ShotSpec("rocket", 48)], SIZE, audio=True)
SECONDS = 6.0  # 144 frames at 24 fps
TOLERANCE_S = 1.0


def _faststart(src: Path, dst: Path) -> None:
    """The clip remuxed (packets copied) with the moov atom first and audio and video interleaved by time."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        packets = [p for p in inp.demux(*[inp.streams[i] for i in streams]) if p.dts is not None]
        for p in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            p.stream = streams[p.stream.index]
            out.mux(p)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("truncated")
    plain = root / "plain.mp4"
    write_clip(CLIP, plain, SIZE, keyframes_every_s=1.0)
    full = root / "full.mp4"
    _faststart(plain, full)
    data = full.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index in front: it still says 6 s once cut
    made = {"full": full}
    for name, keep in (("half", 0.5), ("last-frames", 0.95)):
        made[name] = root / f"{name}.mp4"
        made[name].write_bytes(data[:int(len(data) * keep)])
    made["moov-at-end-half"] = root / "moov-at-end-half.mp4"
    raw = plain.read_bytes()
    assert raw.find(b"mdat") < raw.find(b"moov")
    made["moov-at-end-half"].write_bytes(raw[:len(raw) // 2])
    return made


def _plan(path: Path, target_s: float) -> dict:
    return plan_video(b"", path=str(path), suffix=".mp4", limits=VideoLimits(600, 36000), target_s=target_s, first_s=0,
                      max_segments=20,
                      overlap_s=0.5, budget=Budget.unlimited(), truncation_tolerance_s=TOLERANCE_S)


@pytest.mark.parametrize("target_s", [60.0, 1.0], ids=["one-segment", "segments"])
def test_a_file_cut_mid_mdat_fails_as_corrupt_media_saying_where_it_ends(clips, target_s):
    with pytest.raises(CorruptMedia) as err:
        _plan(clips["half"], target_s)
    reason = err.value.reason
    assert err.value.error_class == "corrupt-media" and err.value.code == "truncated-video"
    # "... ends at 3.1 s of the 6.0 s ..." (the cut falls somewhere in the middle third)
    ends = float(reason.split("ends at ")[1].split(" s")[0])
    assert 2.0 <= ends <= 4.0 and f"of the {SECONDS:.1f} s" in reason, reason
    assert "VIDEO_TRUNCATION_TOLERANCE_SECONDS" in reason


@pytest.mark.parametrize("target_s", [60.0, 1.0], ids=["one-segment", "segments"])
def test_the_whole_file_and_a_shortfall_within_the_tolerance_plan_normally(clips, target_s):
    plan = _plan(clips["full"], target_s)
    assert plan["segments"][-1]["end_s"] == pytest.approx(SECONDS, abs=0.05)
    short = _plan(clips["last-frames"], target_s)  # a few frames short: under the tolerance, not worth a failure
    assert SECONDS - TOLERANCE_S < short["segments"][-1]["end_s"] < SECONDS


def test_a_file_cut_before_its_trailing_index_is_corrupt_media_too(clips):
    with pytest.raises(CorruptMedia):
        _plan(clips["moov-at-end-half"], 60.0)
