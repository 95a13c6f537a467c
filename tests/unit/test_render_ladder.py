"""The HLS ladder of a video, span by span: rung choice, segments that join, playlists players open, the MP4.

In-process, on small clips written by tests/support/videoset.py (and one flash-and-beep clip for A/V sync),
with a small ladder (360p/240p/144p) so every test has several rungs and stays quick.
"""
from __future__ import annotations

import json
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from services.common.errors import LimitExceeded
from services.media.budget import Budget
from services.media.spans import plan_file
from services.media.video import VideoFile, VideoLimits
from services.render.hls import media_playlist, playlists
from services.render.ladder import TS_OFFSET_S, Rung, choose_rungs, encode_span, remux_mp4
from services.render.presets import DEFAULT_FILE, Ladder, LadderRung, PresetsError, load, parse
from tests.support.videoset import ClipSpec, ShotSpec, frames, write_clip

SMALL = Ladder((LadderRung("360p", 360, 26, 1500, 3000), LadderRung("240p", 240, 28, 600, 1200),
                LadderRung("144p", 144, 30, 300, 600)), "veryfast", "high", 96, 48000, 2)
SIZE = (640, 360)
CLIPS = {
    "vfr-audio": ClipSpec("vfr-audio", [ShotSpec("coffee", 40), ShotSpec("rocket", 36), ShotSpec("chelsea", 44),
                                        ShotSpec("camera", 30)], SIZE, vfr=True, audio=True),
    "silent": ClipSpec("silent", [ShotSpec("astronaut", 36), ShotSpec("coins", 36)], SIZE),
}
# Shown upright at 640x360: stored turned the other way (e.g. a quarter: 360x640), then squeezed across
# (to 270 pixels) with a 4:3 sample aspect (written here: videoset squeezes before it turns, which a player undoes
# in the other order).
TURNED = ClipSpec("turned-anamorphic", [ShotSpec("coffee", 24), ShotSpec("camera", 24)], SIZE)
FLASHES = (1.5, 4.0, 6.25)  # seconds: a white frame on screen and a beep, together; 4.0 is a span boundary


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder-clips")

    def get(name: str) -> Path:
        path = root / f"{name}.mp4"
        if not path.exists():
            if name == "flash-beep":
                _flash_beep(path)
            elif name.startswith(TURNED.name):
                _turned_anamorphic(path, int(name.rsplit("-", 1)[1]))
            else:
                write_clip(CLIPS[name], path, SIZE)
        return path
    return get


def _flash_beep(path: Path, seconds: float = 8.0, fps: int = 24) -> None:
    """Grey frames with a white one at each FLASHES time, and 44.1 kHz mono audio silent but for a
    60 ms beep starting at the same times (a keyframe every second: spans can start on any second)."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "x264-params": "keyint=24:scenecut=0"})
        v.width, v.height, v.pix_fmt = 320, 180, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        flash_frames = {round(t * fps) for t in FLASHES}
        for i in range(int(seconds * fps)):
            grey = np.full((180, 320, 3), 235 if i in flash_frames else 60, np.uint8)
            f = av.VideoFrame.from_ndarray(grey, format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
        n = int(seconds * 44100)
        pcm = np.zeros(n, np.float32)
        for t in FLASHES:
            s = int(t * 44100)
            pcm[s:s + 2646] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(2646) / 44100)
        for s in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024].copy(), format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, s
            out.mux(a.encode(af))
        out.mux(a.encode())


def _turned_anamorphic(path: Path, rotation: int) -> None:
    """TURNED stored turned against `rotation` (clockwise degrees a player turns it), squeezed across by 4:3."""
    turn = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}[rotation]
    stored_w, stored_h = (270, 640) if rotation in (90, 270) else (480, 360)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=24, options={"preset": "veryfast"})
        v.width, v.height, v.pix_fmt = stored_w, stored_h, "yuv420p"
        v.codec_context.sample_aspect_ratio = Fraction(4, 3)
        v.set_display_rotation(-rotation)  # FFmpeg counts counter-clockwise
        for i, bgr in enumerate(frames(TURNED, SIZE)):
            stored = cv2.resize(cv2.rotate(bgr, turn), (stored_w, stored_h), interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(stored, format="bgr24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())


def _spans(path: Path, target_s: float):
    with VideoFile(str(path)) as v:
        spans = plan_file(v, target_s, 20)
    assert len(spans) >= 2, spans
    return spans


def _source_times(path: Path) -> list[float]:
    with VideoFile(str(path)) as v:
        return [f.time for f in v.frames()]


def _encode_spans(path: Path, spans, out: Path, hls_s: float = 1.0, **kw) -> tuple[list[Rung], list[dict]]:
    with VideoFile(str(path)) as v:
        rungs = choose_rungs(SMALL, *v.display_size())
    results = [encode_span(path, s.start_s, s.end_s, [r.as_dict() for r in rungs], hls_segment_s=hls_s,
                           out_dir=out / f"span{s.index}", limits=VideoLimits(), budget=Budget.unlimited(), **kw) for s in spans]
    return rungs, results


def _rung_files(out: Path, results: list[dict], rung: str) -> list[Path]:
    return [out / f"span{i}" / seg["file"] for i, r in enumerate(results) for seg in r["rungs"][rung]["segments"]]


def _concat(files: list[Path], to: Path) -> Path:
    to.write_bytes(b"".join(f.read_bytes() for f in files))
    return to


# --- rung choice ---------------------------------------------------------------------------------

def test_rungs_follow_the_pictures_short_side_with_even_sizes_and_never_upscale():
    ladder = load().ladder
    sizes = lambda rungs: [(r.name, r.width, r.height) for r in rungs]  # noqa: E731
    assert sizes(choose_rungs(ladder, 1920, 1080)) == [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480),
                                                      ("240p", 426, 240)]
    assert sizes(choose_rungs(ladder, 1080, 1920)) == [("1080p", 1080, 1920), ("720p", 720, 1280), ("480p", 480, 854),
                                                      ("240p", 240, 426)]
    assert [r.name for r in choose_rungs(ladder, 1280, 720)] == ["720p", "480p", "240p"]
    # Between two rungs: its own size on top (no viewer gets less than was uploaded), caps scaled by area.
    assert sizes(choose_rungs(ladder, 1000, 1000)) == [("1000p", 1000, 1000), ("720p", 720, 720), ("480p", 480, 480),
                                                      ("240p", 240, 240)]
    assert [r.name for r in choose_rungs(ladder, 1334, 750)] == ["720p", "480p", "240p"]  # within 10 %: no extra rung
    assert choose_rungs(ladder, 1600, 900)[0].maxrate_kbps == round(6000 * (1600 * 900) / (1920 * 1080))
    # Smaller than the smallest rung: one rung at its own size, rounded down to even.
    assert sizes(choose_rungs(ladder, 301, 171)) == [("170p", 300, 170)]
    top = choose_rungs(ladder, 1920, 1080)[0]
    assert (top.crf, top.maxrate_kbps, top.preset, top.profile, top.audio_kbps) == (23, 6000, "veryfast", "high", 128)
    assert Rung.from_dict(json.loads(json.dumps(top.as_dict()))) == top  # it travels in the segment message


@pytest.mark.parametrize("mutate, words", [
    (lambda rungs: rungs.reverse(), "largest short_side down"),
    (lambda rungs: rungs[1].update(name="1080p"), "unique"),
    (lambda rungs: rungs[0].update(crf=60), "rungs/0/crf"),
])
def test_a_bad_ladder_fails_start_up_naming_the_problem(mutate, words):
    doc = json.loads(DEFAULT_FILE.read_text())
    mutate(doc["video"]["ladder"]["rungs"])
    with pytest.raises(PresetsError, match=words):
        parse(doc, "presets.json")


# --- segments --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vfr_ladder(clip, tmp_path_factory):
    """The VFR clip with sound, planned in spans of ~2.5 s and encoded span by span (once for the module)."""
    path = clip("vfr-audio")
    out = tmp_path_factory.mktemp("vfr-ladder")
    spans = _spans(path, 2.5)
    rungs, results = _encode_spans(path, spans, out)
    return path, spans, rungs, results, out


def test_adjacent_spans_join_without_gap_overlap_or_duplicate_frame_on_every_rung(vfr_ladder, tmp_path):
    path, spans, rungs, results, out = vfr_ladder
    source = _source_times(path)
    assert [r.name for r in rungs] == ["360p", "240p", "144p"]
    frame = min(b - a for a, b in pairwise(source))
    starts = None
    for r in rungs:
        segs = [s for res in results for s in res["rungs"][r.name]["segments"]]
        assert all(0.5 <= s["duration_s"] < 1.5 for s in segs), segs  # ~1 s; the last of a span absorbs a remainder
        assert sum(s["duration_s"] for s in segs) == pytest.approx(spans[-1].end_s - spans[0].start_s, abs=1e-6)
        # Every segment file starts on an IDR (it decodes alone) at the time reported, the same on every rung.
        rung_starts = []
        for f in _rung_files(out, results, r.name):
            with av.open(str(f)) as c:
                first = next(p for p in c.demux(c.streams.video[0]) if p.size)
                assert first.is_keyframe
                rung_starts.append(float(first.pts * first.time_base) - TS_OFFSET_S)
        assert rung_starts == pytest.approx([s["start_s"] for s in segs], abs=1e-4)
        starts = starts or rung_starts
        assert rung_starts == starts
        cat = _concat(_rung_files(out, results, r.name), tmp_path / f"{r.name}.ts")
        with av.open(str(cat)) as c:
            vs = c.streams.video[0]
            assert (vs.codec_context.width, vs.codec_context.height) == (r.width, r.height)
            times = [float(f.pts * f.time_base) - TS_OFFSET_S for f in c.decode(vs)]
        # The source's frames, each once, at the source's times: the rung lasts what the source lasts.
        assert len(times) == len(source)
        assert max(abs(a - b) for a, b in zip(times, source, strict=True)) < 1e-4
        with av.open(str(cat)) as c:
            audio = [(float(p.pts * p.time_base) - TS_OFFSET_S, float(p.duration * p.time_base))
                     for p in c.demux(c.streams.audio[0]) if p.pts is not None]
        # Audio frames tile the timeline across the span join: each starts where the one before ended.
        assert all(b[0] == pytest.approx(a[0] + a[1], abs=2e-5) for a, b in pairwise(audio))
        assert 0 <= audio[0][0] - source[0] < frame
        assert abs(audio[-1][0] + audio[-1][1] - spans[-1].end_s) < frame


def test_audio_stays_in_sync_with_the_picture_across_a_span_join(clip, tmp_path):
    path = clip("flash-beep")
    spans = _spans(path, 4.0)
    assert any(abs(s.start_s - 4.0) < 1e-6 for s in spans)  # a flash and a beep right on the join
    rungs, results = _encode_spans(path, spans, tmp_path)
    cat = _concat(_rung_files(tmp_path, results, rungs[0].name), tmp_path / "top.ts")
    with av.open(str(cat)) as c:
        flashes = [float(f.pts * f.time_base) - TS_OFFSET_S for f in c.decode(c.streams.video[0])
                   if f.to_ndarray(format="gray").mean() > 150]
    with av.open(str(cat)) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.sample_rate, a.codec_context.layout.nb_channels) == (48000, 2)
        t0, chunks = None, []
        for f in c.decode(a):
            t0 = float(f.pts * f.time_base) - TS_OFFSET_S if t0 is None else t0
            chunks.append(f.to_ndarray()[0])
    pcm = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(pcm) > 0.1)
    onsets = [t0 + loud[0] / 48000] + [t0 + b / 48000 for a_, b in pairwise(loud) if b - a_ > 4800]
    assert len(flashes) == len(onsets) == len(FLASHES)
    for flash, onset in zip(flashes, onsets, strict=True):
        assert abs(flash - onset) <= 1 / 24, (flashes, onsets)


def test_silent_video_and_audio_off_get_no_audio_track(clip, tmp_path):
    for name, kw in (("silent", {}), ("vfr-audio", {"audio": False})):
        path = clip(name)
        with VideoFile(str(path)) as v:
            end = v.keyframe_times()[1]
        rungs, (res,) = _encode_spans(path, [type("S", (), {"index": 0, "start_s": 0.0, "end_s": end})()],
                                      tmp_path / name, **kw)
        assert res["audio"] is False
        assert all("mp4a" not in r["codecs"] for r in res["rungs"].values())
        with av.open(str(_rung_files(tmp_path / name, [res], rungs[0].name)[0])) as c:
            assert not c.streams.audio and c.streams.video


def test_pyav_opens_the_master_playlist_and_every_rung(vfr_ladder, tmp_path):
    path, spans, rungs, results, out = vfr_ladder
    master, media = playlists(results, lambda i, f: f"{out}/span{i}/{f}", lambda name: f"{name}.m3u8", target=1.0)
    (tmp_path / "master.m3u8").write_text(master)
    for name, text in media.items():
        (tmp_path / f"{name}.m3u8").write_text(text)
    assert 'CODECS="avc1.64' in master and "mp4a.40.2" in master and "RESOLUTION=640x360" in master
    assert "FRAME-RATE=" in master and "AVERAGE-BANDWIDTH=" in master
    with av.open(str(tmp_path / "master.m3u8")) as c:
        sizes = sorted((s.codec_context.width, s.codec_context.height) for s in c.streams.video)
        assert sizes == sorted((r.width, r.height) for r in rungs)
        assert c.streams.audio
    source = _source_times(path)
    for r in rungs:
        with av.open(str(tmp_path / f"{r.name}.m3u8")) as c:
            n = sum(1 for _ in c.decode(c.streams.video[0]))
        assert n == len(source)


def test_media_playlist_is_vod_version_3_with_a_target_covering_every_segment():
    text = media_playlist([{"uri": "a.ts", "duration_s": 6.0}, {"uri": "b.ts", "duration_s": 8.9},
                           {"uri": "c.ts", "duration_s": 4.2}], target=6)
    lines = text.splitlines()
    assert lines[:5] == ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:9", "#EXT-X-MEDIA-SEQUENCE:0",
                         "#EXT-X-PLAYLIST-TYPE:VOD"]
    assert lines[5:] == ["#EXTINF:6,", "a.ts", "#EXTINF:8.9,", "b.ts", "#EXTINF:4.2,", "c.ts", "#EXT-X-ENDLIST"]


def test_the_mp4_is_the_segments_remuxed_with_moov_in_front(vfr_ladder, tmp_path):
    path, spans, rungs, results, out = vfr_ladder
    files = _rung_files(out, results, rungs[0].name)
    info = remux_mp4([str(f) for f in files], str(tmp_path / "video.mp4"))
    data = (tmp_path / "video.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")
    assert info["audio"] is True and info["bytes"] == len(data)
    source = _source_times(path)
    with av.open(str(tmp_path / "video.mp4")) as mp4:
        got = [(float(f.pts * f.time_base), f.to_ndarray(format="gray")) for f in mp4.decode(mp4.streams.video[0])]
    with av.open(str(_concat(files, tmp_path / "top.ts"))) as ts:
        want = [f.to_ndarray(format="gray") for f in ts.decode(ts.streams.video[0])]
    assert len(got) == len(want) == len(source)
    assert max(abs(t - s) for (t, _), s in zip(got, source, strict=True)) < 1e-4  # the source's times, offset taken off
    assert all(np.array_equal(g, w) for (_, g), w in zip(got, want, strict=True))  # packets copied: the very same pictures


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_rotated_anamorphic_source_comes_out_upright_with_square_pixels(clip, tmp_path, rotation):
    path = clip(f"{TURNED.name}-{rotation}")
    with VideoFile(str(path)) as v:
        assert v.rotation == rotation and v.sar == Fraction(4, 3)
        end = v.keyframe_times()[1]
    rungs, (res,) = _encode_spans(path, [type("S", (), {"index": 0, "start_s": 0.0, "end_s": end})()], tmp_path)
    assert (rungs[0].width, rungs[0].height) == SIZE
    truth = list(frames(TURNED, SIZE))  # the script's pictures, as a player should show them
    cat = _concat(_rung_files(tmp_path, [res], rungs[0].name), tmp_path / "top.ts")
    with av.open(str(cat)) as c:
        vs = c.streams.video[0]
        assert vs.codec_context.sample_aspect_ratio in (None, Fraction(1), Fraction(0))
        got = [f.to_ndarray(format="bgr24") for f in c.decode(vs)]
    assert len(got) == len(truth)
    for i in (0, 30):
        assert got[i].shape == truth[i].shape
        err = np.abs(got[i].astype(int) - truth[i].astype(int)).mean()
        flipped = np.abs(got[i][::-1, ::-1].astype(int) - truth[i].astype(int)).mean()
        assert err < 12 < flipped, (err, flipped)


PQ_BANDS = (0.30, 0.58, 0.75)  # PQ code values: about 10, 200 (HDR reference white) and 1000 cd/m2


def _pq_clip(path: Path) -> None:
    """A 10-bit PQ / BT.2020 clip (HDR10 tags) of three flat grey bands, 2 s."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=24, options={"preset": "veryfast", "x264-params": "keyint=24"})
        v.width, v.height, v.pix_fmt = 240, 136, "yuv420p10le"
        cc = v.codec_context
        cc.color_trc, cc.color_primaries, cc.colorspace, cc.color_range = 16, 9, 9, 1
        y = np.zeros((136, 240), np.uint16)
        for j, e in enumerate(PQ_BANDS):
            y[:, j * 80:(j + 1) * 80] = round(64 + 876 * e)
        uv = np.full((68, 120), 512, np.uint16)
        arr = np.concatenate([y.ravel(), uv.ravel(), uv.ravel()]).reshape(-1, 240)
        for i in range(48):
            f = av.VideoFrame.from_ndarray(arr, format="yuv420p10le")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())


@pytest.mark.parametrize("choice", ["tonemap", "passthrough"])
def test_hdr_is_tone_mapped_to_sdr_bt709_or_passed_through_by_name(tmp_path, choice):
    path = tmp_path / "pq.mp4"
    _pq_clip(path)
    res = encode_span(path, 0.0, 2.0, [r.as_dict() for r in choose_rungs(SMALL, 240, 136)], hls_segment_s=1.0,
                      out_dir=tmp_path / "out", limits=VideoLimits(), budget=Budget.unlimited(), hdr=choice)
    assert res["hdr"] == choice
    (rung,) = res["rungs"].values()
    with av.open(str(tmp_path / "out" / rung["segments"][0]["file"])) as c:
        cc = c.streams.video[0].codec_context
        frame = next(c.decode(c.streams.video[0]))
        luma = [int(frame.to_ndarray()[:frame.height, j * 80 + 40].mean()) for j in range(len(PQ_BANDS))]
        tags = (cc.color_trc, cc.color_primaries, cc.colorspace)
    if choice == "tonemap":
        assert frame.format.name == "yuv420p" and tags == (1, 1, 1) and rung["codecs"].startswith("avc1.64")
        # Dark stays dark, reference white is near SDR white, 1000 cd/m2 is rolled off into SDR's top.
        assert 40 < luma[0] < 120 < 200 < luma[1] < luma[2] <= 240
    else:
        assert frame.format.name == "yuv420p10le" and tags == (16, 9, 9) and rung["codecs"].startswith("avc1.6E")
        assert luma == pytest.approx([64 + 876 * e for e in PQ_BANDS], abs=4)  # the code values, untouched


def test_a_span_past_its_time_budget_stops_with_limit_exceeded_naming_the_setting(clip, tmp_path):
    path = clip("silent")
    spent = Budget(0.0, "VIDEO_SEGMENT_BUDGET_SECONDS", work="rendering")
    with pytest.raises(LimitExceeded, match="VIDEO_SEGMENT_BUDGET_SECONDS") as e:
        encode_span(path, 0.0, 3.0, [r.as_dict() for r in choose_rungs(SMALL, *SIZE)], hls_segment_s=1.0, out_dir=tmp_path,
                    limits=VideoLimits(), budget=spent)
    assert e.value.code == "time-budget"
