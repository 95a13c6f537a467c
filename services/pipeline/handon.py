"""Hand-on: what a stage does once its work is done, and long work fanned out and in.

The order inside a stage (ARCHITECTURE.md, invariant 1) ends here: outputs written (the
handler, create-if-absent) -> hand-off recorded on the job -> next message published ->
stage marked done; the last stage claims and publishes the job's one final event instead.

A stage whose input is a long video returns `StageResult(fan_out=FanOut(...))`: one
`video-segment.v1` message per segment goes to the stage's segment topic (the topology's
subscription pushing to the stage at /push/segments, so many instances share one video) and
the stage stays running. Each segment delivery:

    job check -> work (skipped when its result is stored already) -> result stored under a
    deterministic name, create-if-absent -> its own finished record, create-if-absent
    (jobs/{job}/segments/{stage}-{index}) -> the records counted -> when all are in, the fan-in
    claimed (a claim record, create-if-absent) -> the claimant reads every result, merges them and
    hands on exactly like a stage (StageResult: outputs, hand-off, next message) -> the
    records and work/{job}/{stage}/ objects deleted.

No document is written by every segment (a Firestore document takes about one write a second):
each writes its own record, the few deliveries that count the set whole race for one claim
record (one create succeeds, the others are told at once), and the job is written only by the
claimant's hand-off.
Redeliveries change nothing (create-if-absent, deterministic names); one claim wins the fan-in
and a second hand-off is refused by hand_off's compare-and-set anyway. A permanent failure of
one segment fails the job with its reason; a transient one retries that segment alone, with
the segment subscription's backoff. The sweep re-drives a stalled fan-out through the stage's
input, which republishes only the segments without a record (or fans in when none is missing).
Fan-out and fan-in share this module because hand_on and _fan_in recurse.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..common.errors import Cancelled, PermanentError, TransientError
from ..common.logs import log
from ..media import budget
from . import cost, events, jobstate, usage
from .bus import encode
from .jobstate import FanIn, FinalStatus, HandOff, Job, SegmentRecord, Skip, Updates
from .jobstore import utcnow
from .payloads import Handoff, SegmentMessage
from .retrying import maybe_fail, retries_so_far
from .runtime import Runtime

logger = logging.getLogger("mediarelay.handon")
# A running stage looks at its job at most this often (before output writes, at budget checks).
ACTIVE_CHECK_SECONDS = 1.0

SEGMENTS_PATH = "/push/segments"

RESULT_TYPE = "application/json"


@dataclass
class StageResult:
    """What a handler hands back: the next message(s) and the fields to store on the job."""

    publish: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    job_fields: Updates = field(default_factory=dict)
    final: FinalStatus | None = None  # "completed" for the last stage
    # A long video: the stage's work split into segments (services/pipeline/handon.py); the
    # stage stays running until the delivery that finishes the last segment fans in.
    fan_out: FanOut | None = None
    # What the stage's other deliveries used (at a fan-in: its fan-out and its segments), added to this one's.
    usage_before: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FanOut:
    messages: list[SegmentMessage]  # video-segment messages to publish (those without a record)
    plan: dict[str, Any]  # kept on the job beside the finished set (a re-driven stage reuses it)
    merge: Merge  # (runtime, job, results in order) -> the stage's result
    # Segments the fan-in waits for; more than `messages` when some are published later (render
    # beside analysis: the picture segments once the analysis arrives). None: len(messages).
    count: int | None = None
    # Published once the fan-out is recorded, before its segments (analyze's plan to render, so
    # the ladder starts beside the analysis); again when the stage input is redelivered or re-driven.
    publish: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.messages) if self.count is None else self.count


# (runtime, job, segment message) -> result (JSON-able)
SegmentWork = Callable[[Runtime, Job, SegmentMessage], dict[str, Any]]

# The object-name prefixes (renditions bucket) a segment writes outside its work files, e.g. its
# HLS media segments: removed with them when the job is cancelled while the segment runs.
SegmentOutputs = Callable[[SegmentMessage], list[str]]

Merge = Callable[[Runtime, Job, list[dict[str, Any]]], StageResult]  # (runtime, job, results in index order)

# Told once a segment's result is stored and recorded (also on a redelivery, so a step after it
# that a crash lost is done again), before the fan-in: render's segment 0 makes the job playable.
SegmentStored = Callable[[Runtime, SegmentMessage], None]



def hand_on(runtime: Runtime, stage: str, job_id: str, result: StageResult) -> None:
    fields = {**result.job_fields, f"stages.{stage}.retried_calls": retries_so_far()}
    if (used := _stage_usage(result)) is not None:
        fields[f"stages.{stage}.usage"] = used
    if result.final:
        fields.update(jobstate.finished(stage, utcnow()))
        publish_final_event(runtime, job_id, result.final, fields)
        return
    if result.fan_out:
        fan_out(runtime, stage, job_id, result.fan_out)
        return
    handoff: Handoff | None = None
    if result.publish:
        topic, payload = result.publish[-1]
        handoff = {"topic": topic, "payload": payload}  # what the sweep republishes to re-drive
    handed = runtime.jobs.hand_off(job_id, stage, fields, handoff)
    if handed is HandOff.ENDED:
        raise Cancelled(f"job ended while {stage} was running; nothing published")
    if handed is HandOff.DUPLICATE:
        log(logger, logging.INFO, f"{stage}: another delivery handed off first; this duplicate publishes nothing")
        return
    for topic, payload in result.publish:
        runtime.bus.publish(topic, payload, job_id=job_id)
    runtime.jobs.finish_stage(job_id, stage)



def _stage_usage(result: StageResult) -> dict[str, Any] | None:
    """This delivery's usage (plus its stage's other deliveries'), with the calls still to come
    counted ahead: the hand-off (or final claim) and the stage's finishing write, its messages."""
    if result.fan_out is not None:
        return None  # recorded with the fan-out (fan_out below), summed at the fan-in
    usage.firestore(reads=1, writes=2)
    for _ in result.publish if not result.final else ("v3 event", "v2 event"):
        usage.published(0)  # a small message: the 1000 billed bytes of a request
    own = usage.snapshot()
    if own is None:
        return None
    return usage.total([own, *result.usage_before]).as_dict()


def publish_final_event(runtime: Runtime, job_id: str, outcome: FinalStatus, fields: Updates) -> bool:
    """Finalise the job and publish its one public event (see jobstate.claim_final).
    False when the event was already out (or the job does not exist)."""
    job = runtime.jobs.claim_final(job_id, outcome, fields)
    if job is None:
        return False
    job_cost = cost.estimate(job, cost.Prices.of(runtime.settings))
    event = events.build_event(job, public_base_url(runtime), job_cost)
    message_id = runtime.bus.publish(events.TOPIC, event, job_id=job_id)
    # v2 beside v3 for one release (invariant 13): both copies carry the same stable id.
    runtime.bus.publish(events.PREVIOUS_TOPIC, events.build_event_v2(job), job_id=job_id)
    runtime.jobs.mark_final_published(job_id, message_id, {"cost": job_cost})  # the job view shows what the event said
    log(logger, logging.INFO, f"job {event['status']}: event published", event_id=event["id"])
    return True



def public_base_url(runtime: Runtime) -> str:
    """The API's public origin every link of a public event starts with."""
    if not runtime.settings.public_base_url:
        raise RuntimeError("PUBLIC_BASE_URL is not set: public events link to the API by it (a deployment error)")
    return runtime.settings.public_base_url


def segment_topic(rt: Runtime, stage: str) -> str:
    return rt.topology.subscription_for_service(stage, SEGMENTS_PATH).topic



def work_prefix(job_id: str, stage: str) -> str:
    """The stage's work files of one job in the renditions bucket, deleted after its fan-in."""
    return f"work/{job_id}/{stage}/"



def segment_prefix(job_id: str, stage: str, index: int) -> str:
    """A segment's own work files in the renditions bucket (removed if its job is cancelled under it)."""
    return f"{work_prefix(job_id, stage)}{index:04d}-"



def result_name(job_id: str, stage: str, index: int) -> str:
    """Where a segment's result is kept until the fan-in (the renditions bucket's work/ prefix)."""
    return f"{work_prefix(job_id, stage)}segment-{index:04d}.json"



def segment_messages(msg: Mapping[str, Any], stage: str, spans: list[dict[str, Any]],
                     params: list[dict[str, Any]], *, first: int = 0, count: int | None = None) -> list[SegmentMessage]:
    """One video-segment message per span of the stage input `msg` (params: per segment), numbered
    from `first`, of `count` segments in all (default: these)."""
    count = len(spans) if count is None else count
    return [{"job_id": msg["job_id"], "stage": stage, "kind": msg["kind"], "source": msg["source"], "index": first + i,
             "count": count, "start_s": span["start_s"], "end_s": span["end_s"], "params": p}
            for i, (span, p) in enumerate(zip(spans, params, strict=True))]



def fan_out(rt: Runtime, stage: str, job_id: str, fan: FanOut) -> None:
    """Record the fan-out on the job, then publish the segments not finished yet."""
    messages, count = fan.messages, fan.total
    usage.firestore(reads=1, writes=1)  # the fan-out record, written with this snapshot, and the messages below:
    for _ in [*fan.publish, *messages]:
        usage.published(0)
    done = rt.jobs.fan_out(job_id, stage, count, fan.plan, usage.snapshot())
    if done is None:
        log(logger, logging.INFO, f"{stage}: not fanned out, the stage is no longer running")
        return
    for topic, payload in fan.publish:
        rt.bus.publish(topic, payload, job_id=job_id)
    finished = set(done)
    missing = [m for m in messages if m["index"] not in finished]
    if not missing:  # every result is in but the fan-in was lost (a crash, a restart): do it now
        claim = rt.jobs.claim_fan_in(job_id, stage, "input", count)
        if claim is FanIn.COMPLETE:
            _claimed_fan_in(rt, stage, job_id, count, fan.merge, claimant="input")
        else:
            log(logger, logging.INFO, f"{stage}: every segment published is in; not fanned in here ({claim.value})")
        return
    topic = segment_topic(rt, stage)
    for m in missing:
        rt.bus.publish(topic, m, job_id=job_id)
    log(logger, logging.INFO, f"{stage}: fanned out {len(missing)} of {count} segments", topic=topic)



def segment_delivery(rt: Runtime, stage: str, work: SegmentWork, merge: Merge, data: SegmentMessage, *,
                     outputs: SegmentOutputs | None = None, stored: SegmentStored | None = None) -> None:
    job_id, index, count = data["job_id"], data["index"], data["count"]
    start = rt.jobs.begin_segment(job_id, stage, index, count)
    if not start.proceed or start.job is None:
        if start.outcome is Skip.FINAL and (status := jobstate.ended(start.job)):
            publish_final_event(rt, job_id, status, {})  # heals an event lost to a crash
        log(logger, logging.INFO, f"{stage}: segment {index} acknowledged without work ({start.reason})")
        return
    maybe_fail(f"segment.{stage}")
    bucket, name = rt.settings.renditions_bucket, result_name(job_id, stage, index)
    try:
        with running(rt, job_id, stage):
            if rt.blobs.find_bytes(bucket, name) is None:  # a redelivery after the result was stored does no work
                result = work(rt, start.job, data)
                ensure_job_active()
                rt.blobs.put_if_absent(bucket, name, encode(result), RESULT_TYPE)
    except Cancelled:  # the job ended under this segment (its child was killed, or a check saw it)
        _discard_segment(rt, stage, data, outputs)
        raise
    usage.firestore(writes=1)  # the record below, which keeps this snapshot
    if rt.jobs.record_segment(job_id, stage, index, usage.snapshot()):  # create-if-absent: a redelivery changes nothing
        usage.restart()  # recorded: a fan-in by this delivery meters only itself
    if stored is not None:
        stored(rt, data)
    # Also on a redelivery: the delivery that saw the set whole may have died before fanning in.
    outcome = rt.jobs.claim_fan_in(job_id, stage, f"segment-{index}", count)
    log(logger, logging.INFO, f"{stage}: segment {index + 1} of {count} done ({outcome.value})")
    if outcome is FanIn.COMPLETE:
        _claimed_fan_in(rt, stage, job_id, count, merge, claimant=f"segment-{index}")


def _claimed_fan_in(rt: Runtime, stage: str, job_id: str, count: int, merge: Merge, *, claimant: str) -> None:
    """The fan-in this delivery claimed. One that fails here (a transient error, a bug) gives its
    claim back at once, so its redelivery fans in; only a process that dies keeps it until
    FAN_IN_LEASE, after which anyone (the sweep's re-drive) takes it over."""
    try:
        _fan_in(rt, stage, job_id, count, merge)
    except Exception:
        try:
            rt.jobs.release_fan_in(job_id, stage, claimant)
        except Exception:  # noqa: BLE001 - the store may be what failed; the lease still bounds the claim
            logger.warning("%s: fan-in claim of job %s not given back; its lease will end it", stage, job_id)
        raise



def _discard_segment(rt: Runtime, stage: str, data: SegmentMessage, outputs: SegmentOutputs | None) -> None:
    """What the segment wrote before it was stopped: nothing of a cancelled job's is read again."""
    bucket = rt.settings.renditions_bucket
    prefixes = [segment_prefix(data["job_id"], stage, data["index"]), *(outputs(data) if outputs else [])]
    try:
        gone = sum(rt.blobs.delete_prefix(bucket, prefix) for prefix in prefixes)
    except TransientError as exc:
        log(logger, logging.WARNING, f"{stage}: partial outputs of a cancelled segment not deleted ({exc})")
        return
    log(logger, logging.INFO, f"{stage}: segment {data['index']} stopped; {gone} partial outputs deleted")



def _fan_in(rt: Runtime, stage: str, job_id: str, count: int, merge: Merge) -> None:
    job = rt.jobs.get(job_id)
    if job is None or _fanned_in(job, stage):
        return
    bucket = rt.settings.renditions_bucket
    try:
        results = [json.loads(rt.blobs.get_bytes(bucket, result_name(job_id, stage, i))) for i in range(count)]
    except PermanentError:
        # Two deliveries of one segment may both hold the claim (a claimant's redelivery takes it
        # back); the other one fanned in and removed the results meanwhile: nothing is missing.
        if _fanned_in(rt.jobs.get(job_id), stage):
            log(logger, logging.INFO, f"{stage}: fanned in by another delivery meanwhile")
            return
        raise
    with running(rt, job_id, stage):
        result = merge(rt, job, results)
    result.job_fields[f"stages.{stage}.segments.fanned_in_at"] = utcnow()  # written with the hand-off: no extra write
    records = sorted(rt.jobs.segment_records(job_id, stage), key=lambda r: r["index"])
    # What each segment did, kept on the job once its records are deleted (the console's waterfall).
    result.job_fields[f"stages.{stage}.segments.done"] = [segment_summary(r) for r in records]
    result.usage_before = [*(r["usage"] for r in records if r.get("usage")),
                           *filter(None, [job["stages"][stage].get("fan_out_usage")])]
    usage.firestore(deletes=count + 1)  # clean_up_segments below (the records and the claim), counted ahead
    hand_on(rt, stage, job_id, result)
    log(logger, logging.INFO, f"{stage}: fanned in {count} segments")
    clean_up_segments(rt, stage, job_id)



def segment_summary(record: SegmentRecord) -> dict[str, Any]:
    """A finished segment as the job keeps it: its index, when it finished and how long its delivery took."""
    return {"index": record["index"], "done_at": record["done_at"],
            "seconds": round(float((record.get("usage") or {}).get("wall_seconds", 0.0)), 3)}


def _fanned_in(job: Job | None, stage: str) -> bool:
    """The stage has handed on (or the job ended): a fan-in now would only repeat it."""
    return job is None or job["status"] in jobstate.FINAL or job["stages"][stage]["state"] in (jobstate.HANDED_OFF, "done")


def clean_up_segments(rt: Runtime, stage: str, job_id: str) -> None:
    """After the hand-off nothing reads a segment's record or work objects again (a late
    segment delivery is acknowledged as fanned-in). Best effort: what a failure here leaves is
    removed by the records' Firestore TTL and the work/ lifecycle rule (terraform/)."""
    try:
        records = rt.jobs.delete_segments(job_id, stage)
        objects = rt.blobs.delete_prefix(rt.settings.renditions_bucket, work_prefix(job_id, stage))
    except TransientError as exc:
        log(logger, logging.WARNING, f"{stage}: segment records or work files not deleted; their TTL will ({exc})")
        return
    log(logger, logging.INFO, f"{stage}: deleted {records} segment records and {objects} work files")



@dataclass
class _Running:
    runtime: Runtime
    job_id: str
    stage: str
    checked_at: float = 0.0


_running: contextvars.ContextVar[_Running | None] = contextvars.ContextVar("running_stage", default=None)



@contextlib.contextmanager
def running(runtime: Runtime, job_id: str, stage: str) -> Iterator[None]:
    """Work of `stage` on `job_id` runs in this context (ensure_job_active watches that job)."""
    token = _running.set(_Running(runtime, job_id, stage))
    try:
        yield
    finally:
        _running.reset(token)



def ensure_job_active() -> None:
    """Raise Cancelled if the job of the stage running in this context has ended meanwhile
    (an operator cancelled it). Called before output writes and at budget checks, so a
    cancelled job gets nothing more written; throttled to one read per ACTIVE_CHECK_SECONDS."""
    running = _running.get()
    if running is None or time.monotonic() - running.checked_at < ACTIVE_CHECK_SECONDS:
        return
    running.checked_at = time.monotonic()
    job = running.runtime.jobs.get(running.job_id)
    if job is not None and job["status"] in jobstate.FINAL:
        error = job.get("error")
        reason = (error["reason"] if error else "") or f"job {job['status']}"
        raise Cancelled(f"job ended while {running.stage} was running ({reason}); nothing more written")



budget.on_check(ensure_job_active)  # budget checks in a stage's own process watch its job
