"""Every rung's first media segment starts its video and its audio together: no hole at t=0 for a player.

Issue 21: hls.js reported a 0.17 s buffer hole at the start of every rung. x264's B-frames put the first
video DTS two frames before the first PTS (0.17 s at 12 fps), while the audio starts at the picture; a
player's timeline starts at the earliest timestamp it is given, so the video seemed to start late. The
first segment of each rung is read here as a player reads it (PyAV demuxing the MPEG-TS): its first video
packet's PTS and DTS and its first audio packet's PTS must lie within one AAC frame (1024 samples at
48 kHz, 21.3 ms) of one another. The joins of spans and segments are pinned by tests/test_render_ladder.py.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from services.media.budget import Budget
from services.media.video import VideoFile, VideoLimits
from services.render.ladder import AAC_FRAME, choose_rungs, encode_span
from services.render.presets import Ladder, LadderRung

SMALL = Ladder((LadderRung("240p", 240, 28, 600, 1200), LadderRung("144p", 144, 30, 300, 600)), "veryfast", "high", 96,
               48000, 2)
ONE_AUDIO_FRAME = AAC_FRAME / 48000


def _clip(path: Path, fps: int, seconds: float = 3.0) -> None:
    """Moving noise at `fps` (x264 with its B-frames, an IDR every second) and a 44.1 kHz tone from 0."""
    rng = np.random.default_rng(fps)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "x264-params": f"keyint={fps}"})
        v.width, v.height, v.pix_fmt = 426, 240, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        base = rng.integers(0, 255, (240, 426 * 2, 3), dtype=np.uint8)
        for i in range(int(seconds * fps)):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i * 4:i * 4 + 426]), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
        n = int(seconds * 44100)
        pcm = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
        for s in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024].copy(), format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, s
            out.mux(a.encode(af))
        out.mux(a.encode())


def _first_times(ts: Path) -> tuple[float, float, float]:
    """(first video PTS, first video DTS, first audio PTS) of a media segment, in seconds, in file order."""
    with av.open(str(ts)) as c:
        video = next(p for p in c.demux(c.streams.video[0]) if p.size)
        vpts, vdts = float(video.pts * video.time_base), float(video.dts * video.time_base)
    with av.open(str(ts)) as c:
        audio = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        return vpts, vdts, float(audio.pts * audio.time_base)


@pytest.mark.parametrize("fps", [12, 30])
def test_the_first_segment_of_every_rung_starts_video_and_audio_together(tmp_path, fps):
    src = tmp_path / f"clip-{fps}.mp4"
    _clip(src, fps)
    with VideoFile(str(src)) as v:
        rungs = choose_rungs(SMALL, *v.display_size())
    with VideoFile(str(src)) as v:  # (the packet index is read before any decoding)
        keys, end = v.keyframe_times()
    assert keys[0] == 0.0
    result = encode_span(src, keys[0], end, [r.as_dict() for r in rungs], hls_segment_s=1.0, out_dir=tmp_path / "out",
                         limits=VideoLimits(), budget=Budget.unlimited())
    assert result["audio"] and len(rungs) == 2
    for r in rungs:
        first = tmp_path / "out" / result["rungs"][r.name]["segments"][0]["file"]
        vpts, vdts, apts = _first_times(first)
        with av.open(str(first)) as c:  # the encoder did reorder: B-frames are there to be dealt with
            assert any(p.pts is not None and p.dts is not None and p.pts > p.dts for p in c.demux(c.streams.video[0]))
        assert abs(vpts - apts) <= ONE_AUDIO_FRAME, (r.name, vpts, apts)
        assert abs(vdts - apts) <= ONE_AUDIO_FRAME, (r.name, vdts, apts)
        assert vdts <= vpts
