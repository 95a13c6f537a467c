"""Animated images and videos: animated WebP keeps its frames; storyboard tiles and WebVTT cues agree."""
from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image, ImageSequence

from localcloud import samples
from services.media.video import VideoFile, display_rgb
from services.render.animated import is_animated, render_animated
from services.render.presets import load
from services.render.video import plan_storyboard, render_video
from tests.support.render_support import animated_gif, encode

WHITE = (255, 255, 255)
CLIP = {"format": "mp4", "width": 640, "height": 360, "fps": 24.0, "frame_count": 72, "duration_s": 3.0}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return samples.video_mp4(tmp_path_factory.mktemp("v") / "clip.mp4")


def _animate(raw: bytes, size, **kw):
    cat = load()
    return render_animated(raw, {"width": size[0], "height": size[1]}, cat.image_presets, encoders=cat.encoders, max_pixels=10**8,
                           background=WHITE, poster=cat.animated_poster, max_frames=kw.get("max_frames", 300),
                           max_anim_pixels=kw.get("max_pixels", 25_000_000))


def test_animated_gif_becomes_animated_webp_with_every_frame_and_a_static_poster():
    raw = animated_gif(n=8, duration=80)
    assert is_animated(raw, 10**8)
    outputs, skipped = _animate(raw, (451, 300))
    webps = [r for r in outputs if r.format == "webp"]
    assert {r.preset for r in webps} == {"long-750", "thumb-256", "thumb-128"}  # long-750 at the source's 451x300
    src_frames = [np.asarray(f.convert("RGB"), np.float32) for f in ImageSequence.Iterator(Image.open(io.BytesIO(raw)))]
    for r in webps:
        im = Image.open(io.BytesIO(r.data))
        assert r.extra == {"animated": True, "frames": 8}
        assert im.n_frames == 8 and im.is_animated
        assert im.info.get("loop") == 0
        durations = []
        means = []
        for f in ImageSequence.Iterator(im):
            f.load()
            durations.append(f.info["duration"])
            means.append(np.asarray(f.convert("RGB"), np.float32).mean())
        assert durations == [80] * 8
        assert np.std(means) > 0.3  # the frames differ: it is not one frame repeated
    [poster] = [r for r in outputs if r.preset == "poster"]
    assert poster.format == "jpeg" and poster.extra == {"poster": True}
    got = np.asarray(Image.open(io.BytesIO(poster.data)).convert("RGB"), np.float32)
    assert got.shape[:2] == src_frames[0].shape[:2]
    assert np.abs(got - src_frames[0]).mean() < 8  # the first frame
    assert {s["preset"]: s["same_as"] for s in skipped} == dict.fromkeys(("long-3840", "long-2048", "long-1536"), "long-750")


def test_animated_webp_source_and_over_budget_animation_stays_static():
    frames = [samples.photo("coffee").rotate(i * 15) for i in range(4)]
    raw = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert is_animated(raw, 10**8)
    outputs, skipped = _animate(raw, (600, 400), max_pixels=4 * 128 * 128)  # only the smallest fits
    anim = {r.preset for r in outputs if r.extra.get("animated")}
    assert anim == {"thumb-128"}
    assert any("ANIMATION_MAX_PIXELS" in s["reason"] and s["preset"] == "thumb-256" for s in skipped)
    static = [r for r in outputs if r.preset == "thumb-256" and r.format == "webp"]
    assert len(static) == 1 and getattr(Image.open(io.BytesIO(static[0].data)), "n_frames", 1) == 1


def test_single_frame_gif_is_not_animated():
    assert not is_animated(encode(samples.photo("coffee").convert("P"), "GIF"), 10**8)


def _cues(vtt: str):
    pat = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)")
    out = []
    for m in pat.finditer(vtt):
        g = [int(x) if x.isdigit() else x for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        out.append((start, end, g[8], tuple(g[9:13])))
    return out


def frame_at(raw: bytes, seconds: float) -> np.ndarray:
    """What a player shows at `seconds`: the last frame whose PTS is not after it (decoded independently)."""
    with VideoFile(raw) as v:
        shown = None
        for f in v.frames():
            if f.time > seconds + 1e-6:
                break
            shown = f
        return display_rgb(shown.frame, v.sar, v.rotation)


def test_storyboard_tiles_and_vtt_agree(clip):
    cat = load()
    _, board = render_video(clip, ".mp4", CLIP, poster=cat.poster, still=cat.still, encoders=cat.encoders, tile_width=160,
                            columns=4, interval_s=0.5, max_tiles=100, max_stills=50, storyboard_quality=90)
    sheet = np.asarray(Image.open(io.BytesIO(board.sprite)).convert("RGB"), np.float32)
    cues = _cues(board.vtt)
    assert board.vtt.startswith("WEBVTT\n\n")
    assert len(cues) == board.tiles == 6 and (board.columns, board.rows) == (4, 2)
    assert sheet.shape[:2] == (board.rows * board.tile[1], board.columns * board.tile[0]) == (180, 640)
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(3.0)
    for (s0, e0, *_), (s1, *_rest) in zip(cues, cues[1:], strict=False):
        assert e0 == pytest.approx(s1) and e0 > s0  # contiguous, ordered
    seen = set()
    for start, end, name, (x, y, w, h) in cues:
        assert name == "storyboard.jpg" and (w, h) == board.tile
        assert x + w <= sheet.shape[1] and y + h <= sheet.shape[0] and (x, y) not in seen
        seen.add((x, y))
        tile = sheet[y:y + h, x:x + w]
        want = cv2.resize(frame_at(clip, (start + end) / 2), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        assert np.abs(tile - want).mean() < 10, (start, end)  # the tile shows its cue's moment


def test_storyboard_interval_widens_to_respect_the_tile_limit():
    plan = plan_storyboard(0.0, 3.0, 640, 360, tile_width=100, columns=10, interval_s=0.1, max_tiles=5)
    assert plan.tiles == 5 and plan.interval_s == pytest.approx(0.6)
    assert plan.cues[-1] == (pytest.approx(2.4), pytest.approx(3.0))


def test_video_v1_analysis_poster_from_first_tenth_and_one_still(clip):
    cat = load()
    outputs, board = render_video(clip, ".mp4", CLIP, poster=cat.poster, still=cat.still, encoders=cat.encoders,
                                  tile_width=160, columns=10, interval_s=2.0, max_tiles=100, max_stills=50, storyboard_quality=75)
    posters = [r for r in outputs if r.preset == "poster"]
    stills = [r for r in outputs if r.preset == "still"]
    assert [r.format for r in posters] == ["jpeg", "webp"]
    assert posters[0].extra["time_ms"] <= 300
    assert len(stills) == 1 and stills[0].extra["shot"] == 0
    assert board.tiles == 2


def test_video_v2_shots_poster_is_best_shot_keyframe_and_one_still_per_shot(clip):
    cat = load()
    shots = [
        {"start_ms": 0, "end_ms": 1500, "keyframe_ms": 700, "visual_score": 0.3},
        {"start_ms": 1500, "end_ms": 3000, "keyframe_ms": 2200, "visual_score": 0.9},
    ]
    analysis = CLIP | {"shots": shots}
    outputs, _ = render_video(clip, ".mp4", analysis, poster=cat.poster, still=cat.still, encoders=cat.encoders,
                              tile_width=160, columns=10, interval_s=2.0, max_tiles=100, max_stills=50, storyboard_quality=75)
    [poster_jpeg] = [r for r in outputs if r.preset == "poster" and r.format == "jpeg"]
    assert poster_jpeg.extra["time_ms"] == 2200
    stills = [r for r in outputs if r.preset == "still"]
    assert [(r.extra["shot"], r.extra["time_ms"]) for r in stills] == [(0, 700), (1, 2200)]
    # The first shot is the coffee photo, the second the cat: the stills differ as the shots do.
    a, b = (np.asarray(Image.open(io.BytesIO(r.data)).convert("RGB"), np.float32) for r in stills)
    assert np.abs(a - b).mean() > 20
    assert np.abs(np.asarray(Image.open(io.BytesIO(poster_jpeg.data)).convert("RGB"), np.float32) - b).mean() < 6
