"""Render cost of a video against its length: one forward pass should make it linear and near a bare decode.

Clips of 1, 5 and 10 minutes (640x360, 24 fps, libx264 through PyAV), each twice: with one keyframe
for the whole file (the worst case for seeking: every seek decodes from the start) and with a
normal 2 s GOP. A shot every 10 s (keyframe in its middle) gives render its stills (up to
VIDEO_MAX_STILLS) and the storyboard its tiles (up to STORYBOARD_MAX_TILES). Each measurement
runs in a fresh subprocess pinned to one core; CPU time is time.process_time() of that process.
The baseline is a bare threaded PyAV decode of the same file in the same run. Clips are cached
under bench/out/render-video/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "render-video"
VERSION = 2
SIZE = (640, 360)
FPS = 24
MINUTES = (1, 5, 10)
GOPS = {"one-keyframe": 10**6, "gop-2s": 2 * FPS}
SHOT_SECONDS = 10
GOAL = 1.3


def clip_path(gop: str, minutes: int) -> Path:
    return OUT / f"{gop}-{minutes}min-v{VERSION}.mp4"


def write(path: Path, minutes: int, keyint: int) -> None:
    """A slow pan over one photo per shot, a hard cut every SHOT_SECONDS: cheap to make, real to decode."""
    import av
    import cv2
    import numpy as np
    from skimage import data

    w, h = SIZE
    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins"):
        a = getattr(data, name)()
        a = np.dstack([a] * 3) if a.ndim == 2 else a[:, :, :3]
        photos.append(cv2.resize(np.ascontiguousarray(a), (2 * w, 2 * h), interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(0)
    grain = [rng.integers(0, 5, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(keyint), "keyint_min": str(min(keyint, 10**5)),
                          "sc_threshold": "0"}
        for i in range(minutes * 60 * FPS):
            shot, j = divmod(i, SHOT_SECONDS * FPS)
            photo = photos[shot % len(photos)]
            x = (j * 2) % w
            frame = cv2.add(photo[h // 2:h // 2 + h, x:x + w], grain[i % 4])
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts = i
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)


def analysis(minutes: int) -> dict:
    seconds = minutes * 60
    shots = [{"start_ms": s * 1000, "end_ms": min(seconds, s + SHOT_SECONDS) * 1000,
              "keyframe_ms": int((s + SHOT_SECONDS / 2) * 1000), "visual_score": 0.5}
             for s in range(0, seconds, SHOT_SECONDS)]
    return {"format": "mp4", "width": SIZE[0], "height": SIZE[1], "fps": FPS, "frame_count": seconds * FPS,
            "start_s": 0.0, "duration_s": float(seconds), "shots": shots}


def _worker(tool: str, path: str, minutes: int) -> dict:
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})

    from services.common.config import Settings
    from services.render.presets import load
    from services.render.video import render_video

    s, cat = Settings.from_env(), load()
    cpu = time.process_time()
    if tool == "decode":
        from tests.support.videoset import bare_decode

        bare_decode(path)
        out = {}
    else:
        renditions, board = render_video(path, ".mp4", analysis(minutes), poster=cat.poster, still=cat.still,
                                         encoders=cat.encoders, tile_width=s.storyboard_tile_width, columns=s.storyboard_columns,
                                         interval_s=s.storyboard_interval_seconds, max_tiles=s.storyboard_max_tiles,
                                         max_stills=s.video_max_stills, storyboard_quality=cat.storyboard_quality)
        out = {"stills": sum(r.preset == "still" for r in renditions), "tiles": board.tiles}
    return {"cpu": time.process_time() - cpu, **out}


def _run(tool: str, path: Path, minutes: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.render_video_bench", "--worker", tool, str(path), str(minutes)],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"worker {tool} {path.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from bench.analyze_bench import table

    OUT.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for gop, keyint in GOPS.items():
        for minutes in MINUTES:
            if not clip_path(gop, minutes).exists():
                write(clip_path(gop, minutes), minutes, keyint)
    print(f"clips {SIZE[0]}x{SIZE[1]} at {FPS} fps, {len(GOPS) * len(MINUTES)} files ready in {time.perf_counter() - t:.0f} s")
    rows, worst, marginal = [], 0.0, 0.0
    for gop in GOPS:
        costs = {}
        for minutes in MINUTES:
            path = clip_path(gop, minutes)
            dec = min(_run("decode", path, minutes)["cpu"] for _ in range(2))
            ren = [_run("render", path, minutes) for _ in range(2)]
            cpu = min(r["cpu"] for r in ren)
            costs[minutes] = (dec, cpu)
            worst = max(worst, cpu / dec)
            rows.append([gop, f"{minutes} min", f"{dec:.1f}", f"{cpu:.1f}", f"{cpu / dec:.2f}x", f"{cpu - dec:.2f}",
                         f"{ren[0]['stills']} / {ren[0]['tiles']}"])
        (d1, r1), (d10, r10) = costs[MINUTES[0]], costs[MINUTES[-1]]
        marginal = max(marginal, (r10 - r1) / (d10 - d1))
    print("\nRender of a video (poster, stills, storyboard) against a bare threaded decode of the same file, one core. "
          "'extra' is what the renditions add to the decode: encoding the stills and the sprite, bounded by "
          "VIDEO_MAX_STILLS and STORYBOARD_MAX_TILES, so it stops growing with length")
    print(table(rows, ["GOP", "length", "decode CPU s", "render CPU s", "render / decode", "extra CPU s", "stills / tiles"]))
    print("\nGoals")
    goals = [(f"render <= {GOAL}x a bare decode (every length, both GOPs)", worst, GOAL),
             (f"linear: each added minute costs <= {GOAL}x a minute of decode (1 -> 10 min)", marginal, GOAL)]
    print(table([[g, f"{v:.2f}x", "met" if v <= limit else "MISSED"] for g, v, limit in goals], ["goal", "measured", "status"]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
