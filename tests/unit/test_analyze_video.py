"""Video analysis on real encoded files: shots from generated footage with known cuts, and the limits."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from localcloud import samples
from services.analyze.image import analyze_image
from services.analyze.video import analyze_video
from services.common.config import REPO_ROOT, Settings
from services.common.errors import CorruptMedia, LimitExceeded
from services.media.budget import Budget
from services.pipeline.schemas import validate
from services.pipeline.topology import load_topology
from tests.support.videoset import ClipSpec, ShotSpec, frames

SIZE = (320, 180)
FPS = 24

# Hard cuts, a pan, a zoom, two flashes, a slow lighting ramp and a fade through black.
CLIP = ClipSpec("test", [
    ShotSpec("coffee", 30, flashes=[(12, 2)]),
    ShotSpec("rocket", 36, "pan", 3, (1, 0), (0.3, 0.5)),
    ShotSpec("astronaut", 30, "zoom", 0.5),
    ShotSpec("chelsea", 30, lighting=(1.0, 0.45), flashes=[(20, 1)]),
    ShotSpec("camera", 30, join="fade"),
    ShotSpec("astronaut", 24, start=(0.7, 0.75)),  # same photo as two shots ago, new framing
])


def write(path: Path, clip: ClipSpec, fourcc: str = "mp4v", size=SIZE) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, size)
    for frame in frames(clip, size):
        writer.write(frame)
    writer.release()
    return path.read_bytes()


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory) -> bytes:
    return write(tmp_path_factory.mktemp("video") / "clip.mp4", CLIP)


def frame_of(ms: int) -> int:
    return round(ms * FPS / 1000)


def test_cuts_found_within_one_frame_and_nothing_else(clip_mp4):
    a = analyze_video(clip_mp4, ".mp4", 600, 36000)
    starts = [frame_of(s["start_ms"]) for s in a["shots"]]
    truth = CLIP.transitions()
    assert len(starts) == 1 + len(truth), starts
    for found, t in zip(starts[1:], truth, strict=True):
        assert t.start - 1 <= found <= t.end + 1, (found, t)
    hard = [found - t.start for found, t in zip(starts[1:], truth, strict=True) if t.kind == "cut"]
    assert all(abs(d) <= 1 for d in hard)


def test_cuts_beside_a_whip_pan_and_around_a_blank_card_but_not_in_a_strobe(tmp_path):
    clip = ClipSpec("awkward", [
        ShotSpec("coffee", 24), ShotSpec("grass", 24, "pan", 8, (1, 0), (0.2, 0.5)),  # ~32 px/frame at 1280 wide
        ShotSpec("rocket", 36, flashes=[(6, 1), (10, 1), (14, 1), (18, 1)]),
        ShotSpec("moon", 30, lighting=(0.3, 0.3)), ShotSpec("chelsea", 24),  # a flat grey card for 1.25 s
    ])
    a = analyze_video(write(tmp_path / "awkward.mp4", clip), ".mp4", 600, 36000)
    starts = [frame_of(s["start_ms"]) for s in a["shots"]]
    assert len(starts) == 5, starts
    for found, t in zip(starts[1:], clip.transitions(), strict=True):
        assert abs(found - t.start) <= 1, (found, t)


def test_shots_tile_the_video_with_a_keyframe_inside_each(clip_mp4):
    a = analyze_video(clip_mp4, ".mp4", 600, 36000)
    shots = a["shots"]
    assert shots[0]["start_ms"] == 0 and shots[-1]["end_ms"] == round(a["duration_s"] * 1000)
    for prev, nxt in zip(shots, shots[1:], strict=False):
        assert prev["end_ms"] == nxt["start_ms"]
    for s in shots:
        assert s["start_ms"] <= s["keyframe_ms"] < s["end_ms"]
        assert 0 <= s["visual_score"] <= 1


def test_header_facts_and_schema(clip_mp4):
    a = analyze_video(clip_mp4, ".mp4", 600, 36000)
    assert (a["width"], a["height"], a["rotation"]) == (320, 180, 0)
    assert a["codec"] == "mpeg4"  # MPEG-4 Part 2, FFmpeg's codec name (not the container's tag)
    assert a["video"]["profile"] == "Simple Profile" and a["video"]["sar"] == [1, 1] and a["audio"] == []
    assert a["fps"] == pytest.approx(FPS) and a["frame_count"] == CLIP.frames
    assert a["duration_s"] == pytest.approx(CLIP.frames / FPS, abs=0.01)
    msg = {"job_id": "job-00000001", "kind": "video", "analysis": a,
           "source": {"uri": "gs://b/o", "bucket": "bkt", "name": "o", "generation": "1", "content_type": "video/mp4", "size": 1}}
    validate(REPO_ROOT / "schemas", "media-analyzed.v5", msg)


def test_soft_dark_shot_scores_below_a_crisp_well_exposed_one(tmp_path):
    clip = ClipSpec("score", [ShotSpec("astronaut", 24), ShotSpec("coffee", 24, lighting=(0.25, 0.25))])
    path = tmp_path / "score.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for i, frame in enumerate(frames(clip, SIZE)):
        writer.write(cv2.GaussianBlur(frame, (0, 0), 3) if i >= 24 else frame)
    writer.release()
    a = analyze_video(path.read_bytes(), ".avi", 600, 36000)  # AVI/MJPEG: another container and decoder
    crisp, soft = a["shots"]
    assert crisp["visual_score"] > soft["visual_score"] + 0.2


def test_limits_are_permanent_failures_naming_the_setting(clip_mp4):
    with pytest.raises(LimitExceeded, match="MAX_VIDEO_SECONDS=5"):
        analyze_video(clip_mp4, ".mp4", 5, 36000)
    with pytest.raises(LimitExceeded, match="MAX_VIDEO_FRAMES=100"):
        analyze_video(clip_mp4, ".mp4", 600, 100)
    with pytest.raises(LimitExceeded, match="MAX_VIDEO_FRAME_PIXELS=50000"):
        analyze_video(clip_mp4, ".mp4", 600, 36000, max_frame_pixels=50_000)
    with pytest.raises(LimitExceeded, match="STAGE_TIME_BUDGET_SECONDS=0") as err:
        analyze_video(clip_mp4, ".mp4", 600, 36000, budget=Budget(0))
    assert err.value.code == "time-budget"
    with pytest.raises(LimitExceeded, match="STAGE_TIME_BUDGET_SECONDS"):
        analyze_image(samples.jpeg_bytes(samples.photo("coffee")), 10**8, Budget(0))


def test_time_budget_default_sits_below_the_analyze_ack_deadline():
    settings = Settings.from_env()
    topology = load_topology(settings.topology_file)
    sub = topology.subscription_for_service("analyze")
    assert settings.stage_time_budget_seconds < sub.ack_deadline_seconds


def test_garbage_is_corrupt_media():
    with pytest.raises(CorruptMedia):
        analyze_video(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4096), ".mp4", 600, 36000)
