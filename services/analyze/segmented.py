"""Video analysis of one span of the file (a segment of the plan), and the merge of spans into one analysis.

A span [start_s, end_s) on the player's clock is decoded with `overlap_s` more on each side (clamped to
the file), so the detector around the span's edges sees what a pass over the whole file would: the
neighbourhood window of a cut on the first frame, the ramps of a fade, both ends of a dissolve.
A transition belongs to the span that holds the first frame of the shot it begins (for a cut, the cut
frame; for a dissolve or a fade, the frame the new shot starts on): spans partition the frames, so a cut
exactly on a boundary and a dissolve across one are reported once, by one span.

Shots cross boundaries, and a shot's keyframe (an argmax over the shot less 10 % at each end) and score
(medians over its sampled frames) do not decompose into per-part summaries. So a span returns the
detector's per-frame ingredients of its own frames (~20 bytes a frame, packed), and `merge` scores
the shots once over the concatenation, with the same function as the whole-file pass: the same answer.

`analyze_video` (video.py) is one span over the whole file, then `merge`.
"""
from __future__ import annotations

import base64
import bisect
import copy

import numpy as np

from ..common.errors import CorruptMedia
from ..media.budget import Budget
from ..media.video import SPAN_EPSILON, VFR_TOLERANCE, VideoFile, VideoLimits, yuv_planes
from .shots import CutDetector, Transition, Tuning, score_shots

# FFmpeg's skip_loop_filter per codec, used only where the bench (bench/analyze_bench.py) finds the same
# cuts with and without it. Measured on H.264: "all" saves ~11 % of the decode but moved a cut on one
# clip of the set, "noref" saves nothing; so none is used.
SKIP_LOOP_FILTER: dict[str, str] = {}

# VIDEO_SEGMENT_OVERLAP_SECONDS: the farthest the detector reads from the first frame of a new shot
# (detector_reach_s) is a fade through black shorter than a second: 2.5 s either side (the fade out
# walked back through the detector's ring of 2 x the longest dissolve half-width, half the blank run,
# the fade in followed for up to 2 s); a 2 s dissolve needs ~2 s, a cut's window 12 frames. 3 s covers
# them at any rate from 10 fps up, for ~20 % more decoding on a 30 s segment.
DEFAULT_OVERLAP_S = 3.0


def detector_reach_s(fps: float, tuning: Tuning = Tuning()) -> float:
    """Seconds either side of a new shot's first frame that the detector reads to find and describe it."""
    d = CutDetector(64, 36, tuning, fps)  # its ring, longest dissolve half-width, card length at this rate
    ring, k, card = len(d.ring_flat), d.kmax, d.flat_shot_frames
    fade_back = card / 2 + (ring - 2) + 1  # half a short blank run, the ramp out, the frame before it
    fade_ahead = card / 2 + tuning.ramp_in_seconds * fps + 1  # half the run, the ramp in, the frame after it
    dissolve = 2 * k + 2  # the run of centres that pass the test, and each one's ends k frames away
    cut = tuning.window + 1 + tuning.min_shot_frames  # the neighbourhood, and a stronger candidate close by
    return max(fade_back, fade_ahead, dissolve, cut) / fps


def ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


def open_video(source, threads: int = 0) -> VideoFile:
    return VideoFile(source, threads=threads, skip_loop_filter=SKIP_LOOP_FILTER)


def file_facts(video: VideoFile, suffix: str) -> dict:
    """What `merge` needs besides the spans, read at planning time: the probe, the format, the display size."""
    width, height = video.display_size()
    return {**video.probe(), "format": suffix.lstrip("."), "width": width, "height": height}


def analyze_span(path, start_s: float, end_s: float, overlap_s: float, limits: VideoLimits, *, budget: Budget | None = None,
                 threads: int = 0) -> dict:
    """The span's transitions and per-frame shot ingredients (JSON-able), for `merge`."""
    with open_video(path, threads) as video:
        video.check_header(limits)
        return span_of(video, start_s, end_s, overlap_s, limits, budget=budget or Budget.unlimited())


def span_of(video: VideoFile, start_s: float | None, end_s: float | None, overlap_s: float, limits: VideoLimits, *,
            budget: Budget) -> dict:
    """`analyze_span` on an open file; None for start_s/end_s: from the start / to the end of the file."""
    fps = video.probe()["video"]["frame_rate"] or 25.0
    lo = None if start_s is None else start_s - overlap_s
    hi = None if end_s is None else end_s + overlap_s
    times: list[float] = []
    detector = None
    first = own_end = None  # the span's own frames: [first, own_end) of the decoded ones
    last_end = span_end = 0.0
    for f in video.frames(limits, check=lambda n: budget.check(f"decoding frame {n}"), start_s=lo, end_s=hi):
        y, u, v = yuv_planes(f.frame)
        if detector is None:
            detector = CutDetector(y.shape[1], y.shape[0], fps=fps)
        detector.push(y, u, v, f.time)
        i = len(times)
        times.append(f.time)
        last_end = f.time + video.frame_duration(f.frame)
        # The same edges as VideoFile.frames(start_s, end_s): neighbouring spans share no frame and miss none.
        if (start_s is None or f.time >= start_s - SPAN_EPSILON) and (end_s is None or f.time < end_s - SPAN_EPSILON):
            if first is None:
                first = i
            own_end = i + 1
            span_end = last_end
    budget.check("finding shots")
    if detector is None or first is None or own_end is None:
        where = "" if start_s is None else f" between {start_s:.3f} s and {end_s:.3f} s"
        raise CorruptMedia(f"the video has no frame that can be decoded{where}", code="corrupt-video")

    def at(i: int) -> float:
        return times[i] if i < len(times) else last_end

    transitions = [
        {"kind": tr.kind, "frame_s": times[c], "start_s": at(tr.start), "end_s": at(tr.end),
         **({"via": tr.via} if tr.via else {})}
        for c, tr in detector.finish() if first <= c < own_end
    ]
    own = slice(first, own_end)
    return {
        "start_s": start_s, "end_s": end_s,
        "frames": own_end - first,
        "first_s": times[first], "last_s": times[own_end - 1], "frame_end_s": span_end,
        "decoded_from_s": times[0], "decoded_to_s": times[-1],
        "transitions": transitions,
        # Per frame of the span, packed little-endian: PTS (float64), then (float32) d(t-1, t), sharpness
        # (-1 where not sampled) and exposure; the shot scoring reads them at fan-in.
        "pts": _pack(np.asarray(times[own], np.float64)),
        "diff": _pack(np.frombuffer(detector.diff, np.float32)[own]),
        "sharp": _pack(np.frombuffer(detector.sharp, np.float32)[own]),
        "exposure": _pack(np.frombuffer(detector.exposure, np.float32)[own]),
    }


def merge(facts: dict, spans: list[dict]) -> dict:
    """The analysis of the whole video from its spans' results, in order.

    `facts`: VideoFile.probe() plus `format` and the display `width`/`height`."""
    spans = sorted(spans, key=lambda s: s["first_s"])
    for a, b in zip(spans, spans[1:], strict=False):
        if a["end_s"] is None or a["end_s"] != b["start_s"]:  # a plumbing error, not the user's media
            raise ValueError(f"span results do not tile the video: one ends at {a['end_s']} s, the next starts at "
                             f"{b['start_s']} s")
    times = np.concatenate([_unpack(s["pts"], np.float64) for s in spans])
    diff, sharp, expo = (np.concatenate([_unpack(s[k], np.float32) for s in spans]) for k in ("diff", "sharp", "exposure"))
    if np.any(np.diff(times) <= 0):
        raise ValueError("span results share frames: their spans overlap")
    pts = times.tolist()
    end = spans[-1]["frame_end_s"]
    start = pts[0]

    def index(t: float) -> int:  # frame index of a time a span reported (PTS are exact: same float)
        return bisect.bisect_left(pts, t)

    found = [(index(tr["frame_s"]), Transition(tr["kind"], index(tr["start_s"]), index(tr["end_s"]), tr.get("via")))
             for s in spans for tr in s["transitions"]]
    shots = score_shots(found, diff, sharp, expo)

    def at(frame: int) -> int:
        return ms(pts[frame] if frame < len(pts) else end)

    def begins(shot) -> dict | None:
        tr = shot.transition
        if tr is None:  # the first shot begins with the video: no transition, not a cut from nothing
            return None
        out = {"kind": tr.kind, "start_ms": at(tr.start), "end_ms": at(tr.end)}
        if tr.via:
            out["via"] = tr.via
        return out

    probed = {k: copy.deepcopy(v) for k, v in facts.items() if k not in ("format", "width", "height")}
    v = probed["video"]
    intervals = np.diff(times)
    v["variable_frame_rate"] = bool(len(intervals)) and bool(intervals.max() - intervals.min() > VFR_TOLERANCE * intervals.min())
    return {
        "format": facts["format"],
        "codec": v["codec"],
        "width": facts["width"],
        "height": facts["height"],
        "rotation": v["rotation"],
        "fps": round(len(pts) / (end - start), 3) if end > start else v["frame_rate"],
        "frame_count": len(pts),
        "start_s": round(start, 6),
        "duration_s": round(end - start, 3),
        **probed,
        "shots": [
            {"start_ms": at(s.start), "end_ms": at(s.end), "keyframe_ms": at(s.keyframe), "visual_score": s.visual_score,
             "transition": begins(s)}
            for s in shots
        ],
    }


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _unpack(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.dtype(dtype).newbyteorder("<")).astype(dtype)
