"""What segmenting costs the analysis: spans analysed one after the other vs one pass over the file.

A 2-minute 640x360 clip made of the labelled set's shots (cuts, pans, zooms, flashes, fades, dissolves,
cards), a keyframe every 2 s. Baseline: analyze_video over the whole file, in the same process and run.
Then the plan for VIDEO_SEGMENT_SECONDS of 10 and 30 s, each span through analyze_span with the default
VIDEO_SEGMENT_OVERLAP_SECONDS, and the merge: CPU (time.process_time, all decoder threads) as a ratio to
the baseline, frames decoded per frame of video (the overlap's price), the span results' JSON size, and
whether the merged analysis equals the whole-file one. Clip cached under bench/out/shot-spans/.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "shot-spans"
VERSION = 1
SIZE = (640, 360)
SECONDS = 120
GOP = 48  # frames: 2 s at 24 fps
TARGETS = (10.0, 30.0)


def clip():
    from tests.support.videoset import ClipSpec, clip_specs

    shots, frames = [], 0
    while frames < SECONDS * 24:
        for spec in clip_specs():
            if spec.size is None and spec.tuned:  # the labelled scripts (not the small container-facts clips)
                for s in spec.shots:
                    if frames < SECONDS * 24:
                        shots.append(s)
                        frames += s.frames
    return ClipSpec(f"spans-{SECONDS}s", shots, SIZE)


def main() -> None:
    from services.analyze.segmented import DEFAULT_OVERLAP_S, analyze_span, file_facts, merge
    from services.analyze.video import analyze_video
    from services.media.spans import plan_file
    from services.media.video import VideoFile, VideoLimits
    from tests.support.videoset import write_clip

    spec = clip()
    path = OUT / f"{spec.name}-v{VERSION}.mp4"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        write_clip(spec, path, SIZE, keyframes=set(range(0, spec.frames, GOP)))
    limits = VideoLimits(1e9, 10**9)
    cpu = time.process_time()
    whole = analyze_video(str(path), ".mp4", 1e9, 10**9)
    base = time.process_time() - cpu
    rows = [("whole file (baseline)", 1, 1.0, 1.0, 0, "-")]
    for target in TARGETS:
        with VideoFile(str(path)) as video:
            segments = plan_file(video, target, 1000)
            facts = file_facts(video, ".mp4")
        cpu = time.process_time()
        spans = [json.loads(json.dumps(analyze_span(str(path), s.start_s, s.end_s, DEFAULT_OVERLAP_S, limits)))
                 for s in segments]
        merged = merge(facts, spans)
        spent = time.process_time() - cpu
        # Frames the detector read: the span's own ones plus the overlap on each side (PTS of the decoded range).
        read = sum(round((s["decoded_to_s"] - s["decoded_from_s"]) * 24) + 1 for s in spans)
        size = sum(len(json.dumps(s)) for s in spans)
        rows.append((f"{len(segments)} spans of ~{target:g} s", len(segments), spent / base, read / whole["frame_count"],
                     size // len(spans), "yes" if merged == whole else "NO"))
    print(f"clip: {spec.frames} frames, {SIZE[0]}x{SIZE[1]}, {len(whole['shots'])} shots; overlap {DEFAULT_OVERLAP_S:g} s; "
          f"baseline CPU {base:.2f} s")
    print(f"{'':28} {'spans':>5} {'CPU ratio':>9} {'frames read/frame':>17} {'JSON bytes/span':>15} {'== whole':>8}")
    for name, n, ratio, read, size, same in rows:
        print(f"{name:28} {n:5d} {ratio:9.2f} {read:17.2f} {size:15d} {same:>8}")
