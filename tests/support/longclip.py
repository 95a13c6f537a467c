"""The end-to-end clip of issue 12: 3 minutes of 720p with sound, rotation metadata and a variable frame rate.

A script for tests/support/videoset.py's writer (reused, not copied): 181 s, 1280x720 upright, stored turned
(display rotation 90), frame durations cycling 1/24, 1/30, 1/20 s, an AAC tone with a 50 ms burst at
every shot change (to measure audio sync against the picture), and an IDR every 2 s and nowhere else,
so the keyframes, and the segment plan for VIDEO_SEGMENT_SECONDS=40, are known from the script:
[0, 40), [40, 80), [80, 120), [120, 160), [160, 180.99). (181 s, not 180: a 20 s tail would sit on the
plan's "shorter than half the target joins the segment before" edge.) Shots meet at:
- 14, 31, 52, 97, 158 s: hard cuts inside segments (the 31-52 s shot spans the boundary at 40 s);
- 80 s: THE hard cut exactly on a segment boundary (a keyframe); it must be reported once;
- 120 s: a 1 s dissolve centred on a segment boundary; reported once;
- 141 s: a fade through black.

Made once with x264 ultrafast at CRF 28 (19 MB; ~65 s of CPU here), checked against the plan, cached under
~/.cache/mediarelay/ (or $XDG_CACHE_HOME/mediarelay) by LONGCLIP_VERSION; a lock file makes concurrent
test workers wait for one build. `python -m tests.longclip` builds it and prints the time it took.
"""
from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from services.media.spans import plan, plan_file
from services.media.video import VideoFile
from tests.support import videoset
from tests.support.videoset import ClipSpec, ShotSpec, Transition

SEGMENT_SECONDS = 40.0
KEYFRAME_SECONDS = 2.0
SIZE = (1280, 720)  # upright display size
ROTATION = 90
CUT_S = 80.0  # the hard cut on a segment boundary
DISSOLVE_S = 120.0  # the dissolve centred on a segment boundary
# Bump when the script or the encoding changes; the writer's own version is part of the key too.
LONGCLIP_VERSION = f"1-videoset{videoset.VERSION}"


def spec() -> ClipSpec:
    f = videoset.FPS  # frames per second on average: the VFR cycle (1/24 + 1/30 + 1/20) / 3 = 1/24
    shots = [
        ShotSpec("astronaut", 14 * f),
        ShotSpec("coffee", 17 * f, "pan", 2, (1, 0), (0.3, 0.5)),
        ShotSpec("chelsea", 21 * f),
        ShotSpec("rocket", 28 * f, "zoom", 0.3),
        ShotSpec("camera", 17 * f),  # starts at CUT_S
        ShotSpec("coins", 23 * f),
        ShotSpec("hubble_deep_field", 21 * f, "pan", 1, (0, 1), (0.5, 0.3), join="dissolve", mix=f),  # DISSOLVE_S
        ShotSpec("immunohistochemistry", 17 * f, join="fade"),
        ShotSpec("grass", 23 * f, "pan", 2, (-1, 0), (0.7, 0.5)),
    ]
    return ClipSpec("longclip", shots, SIZE, rotation=ROTATION, vfr=True, audio=True, tuned=False)


@dataclass(frozen=True)
class LongClip:
    path: Path
    duration_s: float  # the video stream's end, as the packet index says: last PTS + 1/24 s
    size: tuple[int, int]  # upright display size
    rotation: int
    vfr: bool
    audio: bool
    cut_s: float  # the hard cut exactly on a segment boundary
    dissolve_s: float  # the centre of the dissolve across a segment boundary
    segment_s: float  # the VIDEO_SEGMENT_SECONDS the plan is for
    plan: list[tuple[float, float]]  # expected segments (start_s, end_s)
    keyframes: list[float]  # keyframe PTS, seconds
    pts: list[float]  # every frame's PTS, seconds, as written
    transitions: list[Transition]  # frame indices (tests/support/videoset.py); times via `pts`
    shot_starts_s: list[float]  # where each shot begins (the audio bursts start here, the first shot excepted)

    @property
    def frames(self) -> int:
        return len(self.pts)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediarelay"


def _facts(path: Path) -> LongClip:
    clip = spec()
    pts = [round(t, 6) for t in clip.pts_seconds()]
    starts, n = [], 0
    for s in clip.shots:
        starts.append(pts[n])
        n += s.frames
    duration = round(pts[-1] + 1 / videoset.FPS, 6)  # the MP4 muxer gives the last frame the nominal duration
    step = round(KEYFRAME_SECONDS * videoset.FPS)  # frames per keyframe interval (a whole number of VFR cycles)
    keys = pts[::step]
    segments = [(s.start_s, s.end_s) for s in plan(keys, pts[0], duration, SEGMENT_SECONDS, 1000)]
    lc = LongClip(path, duration, SIZE, ROTATION, True, True, CUT_S, DISSOLVE_S, SEGMENT_SECONDS, segments, keys, pts,
                  clip.transitions(), starts)
    bounds = {a for a, _ in segments[1:]}
    assert len(segments) >= 4, segments
    assert CUT_S in bounds and CUT_S in starts and CUT_S in keys, "the hard cut is not on a segment boundary"
    assert DISSOLVE_S in bounds and any(t.kind == "dissolve" and pts[t.start] < DISSOLVE_S < pts[t.end]
                                        for t in lc.transitions), "the dissolve does not straddle a segment boundary"
    return lc


def _check(path: Path, want: LongClip) -> None:
    """The written file has the keyframes, plan, size and rotation the script says."""
    with VideoFile(path) as v:
        keys, end = v.keyframe_times()
        assert [round(k, 6) for k in keys] == want.keyframes, "the encoder put keyframes elsewhere"
        got = [(s.start_s, s.end_s) for s in plan_file(v, SEGMENT_SECONDS, 1000)]
        assert got == want.plan, (got, want.plan)
        assert round(end, 6) == want.duration_s, (end, want.duration_s)
        assert v.display_size() == SIZE and v.rotation == ROTATION
        assert len(v.container.streams.audio) == 1


def build(path: Path) -> float:
    """Write the clip to `path` (checked before it is moved into place); returns the seconds it took."""
    t = time.perf_counter()
    tmp = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
    want = _facts(path)
    try:
        videoset.write_clip(spec(), tmp, SIZE, preset="ultrafast", crf=28, keyframes_every_s=KEYFRAME_SECONDS,
                            audio_marks_s=tuple(want.shot_starts_s[1:]))
        _check(tmp, want)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - t


def long_clip() -> LongClip:
    """The clip (built on first use, then cached on disk) and its facts."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"longclip-v{LONGCLIP_VERSION}.mp4"
    if not path.exists():
        with open(folder / f"{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build; the others wait for it
            if not path.exists():
                build(path)
    return _facts(path)


if __name__ == "__main__":
    out = cache_dir() / "longclip-build-check.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    cpu = time.process_time()
    wall = build(out)
    print(f"built {out} in {wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU, {out.stat().st_size / 1e6:.1f} MB")
    out.unlink()
