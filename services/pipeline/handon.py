"""Long work in segments: fanned out over Pub/Sub, fanned in on the job (DESIGN.md §1, §5).

A stage whose input is a long video returns `StageResult(segments=[...])`: one
`video-segment.v1` message per segment goes to the stage's segment topic (the topology's
subscription pushing to the stage at /push/segments, so many instances share one video) and
the stage stays running. Each segment delivery:

    job check -> work (skipped when its result is stored already) -> result stored under a
    deterministic name, create-if-absent -> index added to the job's finished set
    (compare-and-set) -> the delivery that completes the set reads every result, merges them
    and hands on exactly like a stage (StageResult: outputs, hand-off, next message).

Redeliveries change nothing (a set, not a counter; deterministic names); a second fan-in is
refused by hand_off's compare-and-set, so the next message goes out once in effect. A
permanent failure of one segment fails the job with its reason; a transient one retries that
segment alone, with the segment subscription's backoff. The sweep re-drives a stalled fan-out
through the stage's input, which republishes only the segments not finished (or fans in when
none is missing).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Flask, Response

from . import faults
from .bus import encode
from .envelope import PushMessage
from .errors import BadMessage
from .logs import bind_fields, log
from .runtime import Runtime
from .stage import (
    FanOut,
    StageResult,
    ensure_job_active,
    hand_on,
    publish_final_event,
    register_job_push,
    run_classified,
    running,
)

logger = logging.getLogger("mediarelay.fanout")
SEGMENTS_PATH = "/push/segments"
RESULT_TYPE = "application/json"

SegmentWork = Callable[[Runtime, dict, dict], dict]  # (runtime, job, segment message) -> result (JSON-able)
Merge = Callable[[Runtime, dict, list[dict]], StageResult]  # (runtime, job, results in index order)


def segment_topic(rt: Runtime, stage: str) -> str:
    return rt.topology.subscription_for_service(stage, SEGMENTS_PATH).topic


def result_name(job_id: str, stage: str, index: int) -> str:
    """Where a segment's result is kept until the fan-in (the renditions bucket's work/ prefix)."""
    return f"work/{job_id}/{stage}/segment-{index:04d}.json"


def segment_messages(msg: dict, stage: str, spans: list[dict], params: list[dict]) -> list[dict]:
    """One video-segment message per span of the stage input `msg` (params: per segment)."""
    count = len(spans)
    return [{"job_id": msg["job_id"], "stage": stage, "kind": msg["kind"], "source": msg["source"], "index": i,
             "count": count, "start_s": span["start_s"], "end_s": span["end_s"], "params": p}
            for i, (span, p) in enumerate(zip(spans, params, strict=True))]


def fan_out(rt: Runtime, stage: str, job_id: str, fan: FanOut) -> None:
    """Record the fan-out on the job, then publish the segments not finished yet."""
    messages = fan.messages
    done = rt.jobs.fan_out(job_id, stage, len(messages), fan.plan)
    if done is None:
        log(logger, logging.INFO, f"{stage}: not fanned out, the stage is no longer running")
        return
    finished = set(done)
    missing = [m for m in messages if m["index"] not in finished]
    if not missing:  # every result is in but the fan-in was lost (a crash, a restart): do it now
        _fan_in(rt, stage, job_id, len(messages), fan.merge)
        return
    topic = segment_topic(rt, stage)
    for m in missing:
        rt.bus.publish(topic, m, job_id=job_id)
    log(logger, logging.INFO, f"{stage}: fanned out {len(missing)} of {len(messages)} segments", topic=topic)


def register_segments(app: Flask, rt: Runtime, stage: str, work: SegmentWork, merge: Merge) -> None:
    sub = rt.topology.subscription_for_service(stage, SEGMENTS_PATH)

    def for_this_stage(msg: PushMessage) -> None:
        if msg.data["stage"] != stage:
            raise BadMessage(f"a segment of {msg.data['stage']} sent to {stage}", code="wrong-stage")

    def run(msg: PushMessage) -> Response:
        bind_fields(segment=msg.data["index"])
        return run_classified(rt, sub, msg, lambda: _segment(rt, stage, work, merge, msg.data))

    register_job_push(app, rt, sub, f"segments_{stage}", run, check=for_this_stage)


def _segment(rt: Runtime, stage: str, work: SegmentWork, merge: Merge, data: dict) -> None:
    job_id, index, count = data["job_id"], data["index"], data["count"]
    start = rt.jobs.begin_segment(job_id, stage, index, count)
    if not start.proceed:
        if start.outcome == "final":
            publish_final_event(rt, job_id, start.job["status"], {})  # heals an event lost to a crash
        log(logger, logging.INFO, f"{stage}: segment {index} acknowledged without work ({start.reason})")
        return
    faults.maybe_fail(f"segment.{stage}")
    bucket, name = rt.settings.renditions_bucket, result_name(job_id, stage, index)
    with running(rt, job_id, stage):
        if rt.blobs.find_bytes(bucket, name) is None:  # a redelivery after the result was stored does no work
            result = work(rt, start.job, data)
            ensure_job_active()
            rt.blobs.put_if_absent(bucket, name, encode(result), RESULT_TYPE)
    outcome = rt.jobs.segment_done(job_id, stage, index)
    log(logger, logging.INFO, f"{stage}: segment {index + 1} of {count} done ({outcome})")
    if outcome == "complete":
        _fan_in(rt, stage, job_id, count, merge)


def _fan_in(rt: Runtime, stage: str, job_id: str, count: int, merge: Merge) -> None:
    job = rt.jobs.get(job_id)
    if job is None:
        return
    bucket = rt.settings.renditions_bucket
    results = [json.loads(rt.blobs.get_bytes(bucket, result_name(job_id, stage, i))) for i in range(count)]
    with running(rt, job_id, stage):
        result = merge(rt, job, results)
    hand_on(rt, stage, job_id, result)
    log(logger, logging.INFO, f"{stage}: fanned in {count} segments")
