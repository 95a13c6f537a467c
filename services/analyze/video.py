"""Video analysis: the container's facts (probe), then one threaded decoding pass that finds the shots.

Limits from the header are checked before any frame is decoded; the decoded frame count, the
presentation time and the time budget are checked again while decoding, since a header can lie.
Every time is the frame's PTS on the player's clock (an edit-list start delay included).
"""
from __future__ import annotations

from ..common.errors import CorruptMedia
from ..common.video import VFR_TOLERANCE, Limits, VideoFile, yuv_planes
from .budget import Budget
from .shots import CutDetector

DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320
# FFmpeg's skip_loop_filter per codec, used only where the bench (bench/analyze_bench.py) finds the same
# cuts with and without it. Measured on H.264: "all" saves ~11 % of the decode but moved a cut on one
# clip of the set, "noref" saves nothing; so none is used.
SKIP_LOOP_FILTER: dict[str, str] = {}


def ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


def analyze_video(source, suffix: str, max_seconds: float, max_frames: int, budget: Budget | None = None,
                  max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS, threads: int = 0) -> dict:
    """`source`: a path, the file's bytes, or a binary file object."""
    budget = budget or Budget.unlimited()
    limits = Limits(max_seconds, max_frames, max_frame_pixels)
    with VideoFile(source, threads=threads, skip_loop_filter=SKIP_LOOP_FILTER) as video:
        video.check_header(limits)
        facts = video.probe()
        times: list[float] = []
        detector = None
        last = None
        for f in video.frames(limits, check=lambda n: budget.check(f"decoding frame {n}")):
            y, u, v = yuv_planes(f.frame)
            if detector is None:
                detector = CutDetector(y.shape[1], y.shape[0], fps=facts["video"]["frame_rate"] or 25.0)
            detector.push(y, u, v)
            times.append(f.time)
            last = f
        budget.check("finding shots")
        if last is None or detector is None:
            raise CorruptMedia("the video has no frame that can be decoded", code="corrupt-video")
        end = last.time + video.frame_duration(last.frame)
        width, height = video.display_size()
    transitions = detector.finish()
    shots = detector.shots(transitions)
    intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
    vfr = bool(intervals) and (max(intervals) - min(intervals)) > VFR_TOLERANCE * min(intervals)
    v = facts["video"]
    v["variable_frame_rate"] = vfr
    start = times[0]

    def at(frame: int) -> int:
        return ms(times[frame] if frame < len(times) else end)

    def begins(shot) -> dict:
        tr = shot.transition
        out = {"kind": tr.kind, "start_ms": at(tr.start), "end_ms": at(tr.end)}
        if tr.via:
            out["via"] = tr.via
        return out

    return {
        "format": suffix.lstrip("."),
        "codec": v["codec"],
        "width": width,
        "height": height,
        "rotation": v["rotation"],
        "fps": round(len(times) / (end - start), 3) if end > start else v["frame_rate"],
        "frame_count": len(times),
        "start_s": round(start, 6),
        "duration_s": round(end - start, 3),
        **facts,
        "shots": [
            {"start_ms": at(s.start), "end_ms": at(s.end), "keyframe_ms": at(s.keyframe), "visual_score": s.visual_score,
             "transition": begins(s)}
            for s in shots
        ],
    }
