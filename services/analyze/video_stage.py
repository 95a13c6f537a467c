"""analyze for a video: plan the segments, then analyse inline (one segment) or fan out.

The plan comes from the packet index (no decoding) in the bounded child, with the header's
limits checked first. A short video is one segment: analysed in this push, as before. A long
one fans out over `video-segments-analyze`: each segment analyses its span (with overlap, so
a transition on or across a boundary is found once) and the merge rebuilds the whole
analysis in order (services/analyze/segmented.py). The plan is made here, once: it goes to
render ahead of the analysis (`planned`, as soon as the fan-out is recorded), so the ladder
encodes beside the analysis, and travels on in `analysis.segments`, so render cuts the video at
the same keyframes.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from ..media.budget import Budget
from ..media.mediatypes import suffix_for
from ..media.rangefile import RangeSource
from ..media.spans import plan_file
from ..media.video import VideoFile, VideoLimits
from ..pipeline import media_work
from ..pipeline.handon import FanOut, StageResult, segment_messages
from ..pipeline.jobstate import Job
from ..pipeline.messages import ingested_message
from ..pipeline.payloads import SegmentMessage
from ..pipeline.runtime import Runtime
from .segmented import analyze_span, merge


def _limits(s) -> VideoLimits:
    return VideoLimits(s.max_video_seconds, s.max_video_frames, s.max_video_frame_pixels)


def plan_video(_raw: bytes, *, path: str | RangeSource, suffix: str, limits: VideoLimits, target_s: float, first_s: float,
               max_segments: int, overlap_s: float, budget: Budget, truncation_tolerance_s: float) -> dict:
    """In the child: header limits, the container's facts and the segment plan; a one-segment
    video is analysed right here too (one download, one child, no fan-out). Every video job
    plans here first, inline or fanned out, so a truncated file fails here, before any segment."""
    with VideoFile(path) as video:
        video.check_header(limits)
        facts = video.probe()
        width, height = video.display_size()
    with VideoFile(path) as video:
        index = video.packet_index()
        video.check_complete(index, truncation_tolerance_s)
        spans = plan_file(video, target_s, max_segments, index, first_s)
    facts.update(format=suffix.lstrip("."), width=width, height=height)
    plan = {"facts": facts, "segments": [s.as_dict() for s in spans]}
    if len(spans) == 1:
        plan["result"] = analyze_span(path, spans[0].start_s, spans[0].end_s, overlap_s, limits, budget=budget)
    return plan


def _span(_raw: bytes, *, path: str | RangeSource, start_s: float, end_s: float, overlap_s: float, limits: VideoLimits,
          budget: Budget) -> dict:
    return analyze_span(path, start_s, end_s, overlap_s, limits, budget=budget)


def handle_video(rt: Runtime, job: Job, msg: dict) -> StageResult:
    s = rt.settings
    src = msg["source"]
    plan = (job["stages"]["analyze"].get("segments") or {}).get("plan")  # a re-driven fan-out reuses its plan
    if plan is None:
        limits = media_work.stage_limits(rt, "analyze")
        budget = Budget(s.stage_time_budget_seconds).sooner(limits.budget("analysis"))
        suffix = suffix_for(src["content_type"])
        with media_work.ranged(rt, src) as source:
            work = partial(plan_video, path=source.ref, suffix=suffix, limits=_limits(s), target_s=s.video_segment_seconds,
                           first_s=s.video_first_segment_seconds, max_segments=s.video_max_segments,
                           overlap_s=s.video_segment_overlap_seconds, budget=budget,
                           truncation_tolerance_s=s.video_truncation_tolerance_seconds)
            plan = media_work.media_work(rt, "analyze", msg["job_id"], work, limits=limits, source=source)
        if "result" in plan:
            return merged(msg, plan, [plan.pop("result")])
    spans = plan["segments"]
    messages = segment_messages(msg, "analyze", spans, [{"overlap_s": s.video_segment_overlap_seconds}] * len(spans))
    return StageResult(fan_out=FanOut(messages, {"plan": plan}, merge_segments, publish=[("media-analyzed", planned(msg, plan))]))


def planned(msg: Mapping[str, Any], plan: dict) -> dict:
    """The plan sent ahead to render (media-analyzed v6 `planned`): its ladder needs the spans and the
    container's facts, not the shots, so it encodes while the segments here analyse (ARCHITECTURE.md,
    invariant 4); the whole analysis joins it at render's fan-in."""
    analysis = {**plan["facts"], "segments": [dict(s) for s in plan["segments"]]}
    return {"job_id": msg["job_id"], "kind": msg["kind"], "source": msg["source"], "analysis": analysis, "planned": True}


def analyze_segment(rt: Runtime, job: Job, seg: SegmentMessage) -> dict:
    """One span's analysis, in the bounded child, within the segment's budget."""
    s = rt.settings
    src = seg["source"]
    limits = media_work.segment_limits(rt, "analyze")
    budget = Budget(s.video_segment_time_budget_seconds, "VIDEO_SEGMENT_TIME_BUDGET_SECONDS").sooner(
        limits.budget("analysis"))
    with media_work.ranged(rt, src) as source:
        work = partial(_span, path=source.ref, start_s=seg["start_s"], end_s=seg["end_s"], overlap_s=seg["params"]["overlap_s"],
                       limits=_limits(s), budget=budget)
        return media_work.media_work(rt, "analyze", seg["job_id"], work, limits=limits, source=source)


def merge_segments(rt: Runtime, job: Job, results: list[dict]) -> StageResult:
    """The fan-in: every segment's result, in order, into the video's analysis."""
    return merged(ingested_message(job), job["stages"]["analyze"]["segments"]["plan"], results)


def merged(msg: Mapping[str, Any], plan: dict, results: list[dict]) -> StageResult:
    analysis = merge(plan["facts"], results)
    analysis["segments"] = [dict(s) for s in plan["segments"]]
    payload = {"job_id": msg["job_id"], "kind": msg["kind"], "source": msg["source"], "analysis": analysis}
    return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": analysis})
