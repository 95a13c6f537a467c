"""Video facts on real files PyAV writes (libx264): PTS times, edit-list delay, SAR, rotation, audio, transitions.

Each clip is a script from tests/support/videoset.py (the truth) encoded in the test; the assertions compare
what analyze and render report against the PTS and the pictures that were written.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from services.analyze.video import analyze_video
from services.common.config import REPO_ROOT
from services.common.errors import CorruptMedia, LimitExceeded
from services.media.video import VideoLimits
from services.pipeline.schemas import validate
from services.render.presets import load
from services.render.video import render_video
from tests.support.videoset import ClipSpec, ShotSpec, frames, write_clip

SIZE = (320, 180)


def encode(tmp_path, clip: ClipSpec) -> bytes:
    path = tmp_path / f"{clip.name}.mp4"
    write_clip(clip, path, clip.size or SIZE)
    return path.read_bytes()


def render(raw: bytes, analysis: dict):
    cat = load()
    return render_video(raw, ".mp4", analysis, poster=cat.poster, still=cat.still, encoders=cat.encoders, tile_width=160,
                        columns=10, interval_s=1.0, max_tiles=100, max_stills=50, storyboard_quality=75)


def picture(r) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(r.data)).convert("RGB"), np.float32)


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def test_vfr_shot_and_keyframe_times_are_the_frames_pts(tmp_path):
    clip = ClipSpec("vfr", [ShotSpec("coffee", 30), ShotSpec("rocket", 27), ShotSpec("chelsea", 33)], SIZE, vfr=True)
    a = analyze_video(encode(tmp_path, clip), ".mp4", 600, 36000)
    pts = [ms(t) for t in clip.pts_seconds()]
    assert a["frame_count"] == clip.frames and a["video"]["variable_frame_rate"] is True
    # Frame index / average rate would be off by up to 21 ms here.
    assert [s["start_ms"] for s in a["shots"]] == [pts[0], pts[30], pts[57]]
    assert all(s["keyframe_ms"] in pts for s in a["shots"])
    validate(REPO_ROOT / "schemas", "media-analyzed.v5", {
        "job_id": "job-00000001", "kind": "video", "analysis": a,
        "source": {"uri": "gs://b/o", "bucket": "bkt", "name": "o", "generation": "1", "content_type": "video/mp4", "size": 1}})


def test_edit_list_delay_is_kept_on_every_time_and_audio_is_described(tmp_path):
    clip = ClipSpec("delayed", [ShotSpec("astronaut", 24), ShotSpec("coins", 24)], SIZE, delay_s=1.0, audio=True)
    a = analyze_video(encode(tmp_path, clip), ".mp4", 600, 36000)
    assert a["start_s"] == pytest.approx(1.0) and a["video"]["start_s"] == pytest.approx(1.0)
    assert a["container"]["start_s"] == 0  # the audio starts at 0: the container starts with its earliest stream
    first = a["shots"][0]
    assert first["start_ms"] == 1000 and first["keyframe_ms"] >= 1000
    assert a["shots"][1]["start_ms"] == 2000 and a["shots"][-1]["end_ms"] == 3000
    [audio] = a["audio"]
    assert (audio["codec"], audio["channels"], audio["sample_rate"]) == ("aac", 2, 48000)
    assert audio["duration_s"] == pytest.approx(3.0, abs=0.1)  # the tone runs from 0 to the end of the video


def test_a_clip_without_audio_says_so(tmp_path):
    a = analyze_video(encode(tmp_path, ClipSpec("mute", [ShotSpec("coffee", 24)], SIZE)), ".mp4", 600, 36000)
    assert a["audio"] == [] and a["video"]["codec"] == "h264" and a["video"]["bit_depth"] == 8
    assert a["video"]["hdr"] is None and a["video"]["rotation"] == 0


def test_anamorphic_poster_stills_and_tiles_have_the_display_aspect(tmp_path):
    clip = ClipSpec("anamorphic", [ShotSpec("chelsea", 24), ShotSpec("astronaut", 24)], SIZE, sar=(4, 3))
    raw = encode(tmp_path, clip)
    a = analyze_video(raw, ".mp4", 600, 36000)
    assert a["video"]["sar"] == [4, 3] and a["video"]["coded_width"] == 240
    assert (a["width"], a["height"]) == SIZE
    outputs, board = render(raw, a)
    for r in outputs:
        assert r.size[0] / r.size[1] == pytest.approx(16 / 9, rel=0.01), r.preset
    assert board.tile[0] / board.tile[1] == pytest.approx(16 / 9, rel=0.02)
    # ... and shows the picture as written, not squeezed.
    [poster] = [r for r in outputs if r.preset == "poster" and r.format == "jpeg"]
    want = list(frames(clip, SIZE))[round(poster.extra["time_ms"] * 24 / 1000)]
    want = cv2.resize(want[:, :, ::-1], poster.size, interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(picture(poster) - want).mean() < 12


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_renditions_are_upright(tmp_path, rotation):
    clip = ClipSpec(f"rot{rotation}", [ShotSpec("astronaut", 24)], SIZE, rotation=rotation)
    raw = encode(tmp_path, clip)
    a = analyze_video(raw, ".mp4", 600, 36000)
    assert a["rotation"] == rotation and (a["width"], a["height"]) == SIZE
    outputs, board = render(raw, a)
    upright = list(frames(clip, SIZE))[12][:, :, ::-1].astype(np.float32)
    for r in outputs:
        got = picture(r)
        assert got.shape[1] > got.shape[0]  # landscape, as written
        want = cv2.resize(upright, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
        turned = cv2.resize(cv2.rotate(upright, cv2.ROTATE_180), (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
        assert np.abs(got - want).mean() < 12 < np.abs(got - turned).mean()
    assert board.tile[0] > board.tile[1]


def _span(shot, pts):
    tr = shot["transition"]
    return tr["kind"], pts.index(tr["start_ms"]), pts.index(tr["end_ms"]) - 1


def test_fade_through_a_card_with_a_logo_and_a_dissolve_are_found_with_their_spans(tmp_path):
    clip = ClipSpec("gradual", [
        ShotSpec("astronaut", 40), ShotSpec("card-black", 30, join="dissolve", mix=12),
        ShotSpec("coffee", 48, join="dissolve", mix=12), ShotSpec("rocket", 48, join="dissolve", mix=24),
        ShotSpec("chelsea", 30), ShotSpec("chelsea", 30, tint=True),
    ], SIZE)
    a = analyze_video(encode(tmp_path, clip), ".mp4", 600, 36000)
    pts = [ms(t) for t in clip.pts_seconds()] + [ms(clip.frames / 24)]
    fade, dissolve, _, _ = clip.transitions()
    assert (fade.kind, dissolve.kind) == ("fade", "dissolve")
    found = a["shots"][1:]
    assert len(found) == 4, [s["transition"] for s in found]
    kind, start, end = _span(found[0], pts)
    assert kind == "fade" and found[0]["transition"]["via"] == "black"
    assert abs(start - fade.start) <= 3 and abs(end - fade.end) <= 3, (start, end, fade)
    kind, start, end = _span(found[1], pts)
    assert kind == "dissolve" and abs(start - dissolve.start) <= 3 and abs(end - dissolve.end) <= 3, (start, end, dissolve)
    # An ordinary cut, then one that changes only the colours (same photo, same framing, same luma).
    assert [_span(s, pts) for s in found[2:]] == [("cut", 166, 165), ("cut", 196, 195)]


def test_render_enforces_the_video_limits_while_decoding(tmp_path):
    raw = encode(tmp_path, ClipSpec("short", [ShotSpec("coffee", 30)], SIZE))
    cat = load()
    analysis = {"format": "mp4", "width": 320, "height": 180}
    kw = dict(poster=cat.poster, still=cat.still, encoders=cat.encoders, tile_width=160, columns=10, interval_s=1.0,
              max_tiles=100, max_stills=50, storyboard_quality=75)
    with pytest.raises(LimitExceeded, match="MAX_VIDEO_FRAMES=10"):
        render_video(raw, ".mp4", analysis, **kw, limits=VideoLimits(max_frames=10))
    with pytest.raises(LimitExceeded, match="MAX_VIDEO_FRAME_PIXELS=1000"):
        render_video(raw, ".mp4", analysis, **kw, limits=VideoLimits(max_frame_pixels=1000))


def test_a_cut_off_video_is_corrupt_media_with_a_reason_for_a_person(tmp_path):
    raw = encode(tmp_path, ClipSpec("whole", [ShotSpec("coffee", 30)], SIZE))
    with pytest.raises(CorruptMedia) as err:
        analyze_video(raw[: len(raw) // 3], ".mp4", 600, 36000)
    assert "0x" not in err.value.reason and "<" not in err.value.reason and "Error" not in err.value.reason
    with pytest.raises(CorruptMedia, match="cannot open the video container: invalid data"):
        analyze_video(b"this is not a video at all " * 40, ".mp4", 600, 36000)


def test_a_video_over_a_limit_is_refused_from_its_header_naming_the_setting():
    """What the door (and nothing later) answers with 413: the container's header alone."""
    import dataclasses
    import io

    import av
    import numpy as np

    from services.common.config import Settings
    from services.media import precheck

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(72):  # 3 s
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 3, np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    raw = buf.getvalue()
    settings = Settings.from_env()
    assert precheck.check(raw, "video", settings).format == ""  # within the limits: nothing to say
    for field, setting in (("max_video_seconds", "MAX_VIDEO_SECONDS"), ("max_video_frame_pixels", "MAX_VIDEO_FRAME_PIXELS")):
        with pytest.raises(precheck.OverLimit) as refused:
            precheck.check(raw, "video", dataclasses.replace(settings, **{field: 1}))
        assert refused.value.setting == setting and setting in refused.value.reason
    assert precheck.check(b"\x00\x00\x00\x18ftypmp42 not a video", "video", settings).format == ""  # left to analyze
