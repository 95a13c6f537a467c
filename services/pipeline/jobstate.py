"""The job state machine: every decision about a job document, as pure functions.

A decision takes the job as it was read (None when there is none) and returns
`(result, updates)`: `updates` maps dotted field paths to new values (DELETE removes one),
or is None when nothing is to be written. The store (jobstore.py) applies the updates only if
the document is unchanged since it was read (compare-and-set), else it reads again and asks
the decision anew — so each decision is taken on the document it writes. No I/O here: the
rules are tested in milliseconds (tests/unit/) and ARCHITECTURE.md states the invariants.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Required, TypedDict, cast

from .payloads import FailureReason, Handoff, Kind, SourceRef

Status = Literal["received", "analyzing", "rendering", "notifying", "completed", "failed", "dead-lettered"]
FinalStatus = Literal["completed", "failed"]
StageState = Literal["pending", "running", "handed-off", "done", "failed", "dead-lettered"]
# Dotted field paths -> new values (DELETE removes one); what a decision asks the store to write.
Updates = dict[str, Any]

# The pipeline's stages, in order; each is also the service that runs it.
STAGES = ("analyze", "render", "notify")
FINAL: tuple[FinalStatus, ...] = ("completed", "failed")
# Parked after a stage exhausted its delivery attempts: not final (no event yet), so an
# operator's replay can resume the job, a purge ends it failed, and the sweep bounds it.
DEAD_LETTERED: Literal["dead-lettered"] = "dead-lettered"
ACTIVE: tuple[Status, ...] = ("received", "analyzing", "rendering", "notifying")
STATUS_RANK: dict[Status, int] = {"received": 0, "analyzing": 1, "rendering": 2, "notifying": 3, "completed": 4, "failed": 4}
# Status while a stage runs (it stays so until the next stage begins).
RUNNING_STATUS: dict[str, Status] = {"analyze": "analyzing", "render": "rendering", "notify": "notifying"}
# A stage's record moves pending -> running -> handed-off (outputs recorded, next message
# about to be published) -> done; or to failed / dead-lettered.
HANDED_OFF: Literal["handed-off"] = "handed-off"
# A delivery that claimed the final event and went silent is presumed dead after this.
FINAL_EVENT_LEASE = dt.timedelta(seconds=60)


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()  # as an update value: remove the field


# --- the job document `jobs/{job_id}` -----------------------------------------------------------


class Segments(TypedDict, total=False):
    """`stages.<stage>.segments`: the fan-out's plan (the stage's own keys) and its size; finished
    segments are records of their own (SegmentRecord)."""

    count: int
    plan: dict[str, Any]  # analyze's plan
    spans: int  # render's plan: the spans (segments 0..spans-1 encode the ladder)
    pictures: bool  # render beside analysis: the picture segments (spans..2*spans-1) are published
    fanned_in_at: dt.datetime
    done: list[dict[str, Any]]  # written with the hand-off: each segment's index, done_at, seconds (handon.segment_summary)


class StageRecord(TypedDict, total=False):
    state: Required[StageState]
    attempts: Required[int]
    started_at: dt.datetime
    last_attempt_at: dt.datetime
    finished_at: dt.datetime
    error: str  # the last failure, for a person
    crashes: int  # media children killed by a signal on this job
    retried_calls: int
    stopped: str  # why a running delivery stopped (the job ended meanwhile)
    stopped_at: dt.datetime
    segments: Segments
    usage: dict[str, Any]  # what the stage used, for its cost (services/pipeline/usage.py)
    fan_out_usage: dict[str, Any]  # what the delivery that fanned out used (summed into `usage` at the fan-in)


class FinalEvent(TypedDict, total=False):
    id: Required[str]
    status: Required[FinalStatus]
    claimed_at: Required[dt.datetime]
    published: Required[bool]
    message_id: str
    published_at: dt.datetime


class DeadLetter(TypedDict):
    stage: str
    reason: str
    at: dt.datetime


class Sweep(TypedDict, total=False):
    redrives: int
    last_redrive_at: dt.datetime


class Deletion(TypedDict, total=False):
    """A deletion's progress (services/ops/jobs.py): asked, erased, its `deleted` event out."""

    requested_at: dt.datetime
    erased_at: dt.datetime
    published_at: dt.datetime
    message_id: str


class Timings(TypedDict, total=False):
    """When the job reached what its user waits for: the ladder plays (a growing playlist) and the
    job is complete. Stage timings are the stages' own records."""

    playable_at: dt.datetime  # also the claim of the `playable` event (claim_playable)
    ready_at: dt.datetime


class Playable(TypedDict, total=False):
    """The `playable` lifecycle event's progress: published once (claim_playable)."""

    claimed_at: dt.datetime
    published_at: dt.datetime
    message_id: str


class Job(TypedDict, total=False):
    """The job document. The delivery core owns the required keys and the records below; a
    stage's outputs (`analysis`, `renditions`, ...) are the stage's own shapes."""

    job_id: Required[str]
    status: Required[Status]
    created_at: Required[dt.datetime]
    updated_at: Required[dt.datetime]
    expires_at: Required[dt.datetime]
    stages: Required[dict[str, StageRecord]]
    kind: Kind
    source: SourceRef
    owner: str | None
    idempotency_key: str | None
    handoff: Handoff
    final_event: FinalEvent
    finished_at: dt.datetime
    error: FailureReason
    dead_letter: DeadLetter
    sweep: Sweep
    analysis: dict[str, Any]
    renditions: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    storyboard: dict[str, Any]
    video: dict[str, Any]
    placeholders: dict[str, str]  # ThumbHash/BlurHash of the still or the video's poster
    on_duplicate: str  # the upload's option (neardup.ON_DUPLICATE); absent: process
    duplicate: dict[str, Any]  # {of, distance, action}: an earlier picture of the client (neardup.check_picture)
    webhooks: dict[str, dict[str, Any]]  # per endpoint: its delivery record
    deleted: Deletion  # DELETE /v1/jobs/{id}: the document is (becoming) a tombstone
    timings: Timings
    playable: Playable


def forward(current: Status, new: Status) -> bool:
    """Statuses only move forward; a parked job may resume at any stage."""
    if current == DEAD_LETTERED:
        return new != "received"
    return current not in FINAL and STATUS_RANK[new] > STATUS_RANK[current]


def new_job(job_id: str, fields: dict[str, Any], now: dt.datetime, ttl: dt.timedelta) -> Job:
    return cast(Job, {  # `fields`: the job's own keys (kind, source, owner, ...)
        "job_id": job_id,
        "status": "received",
        "created_at": now,
        "updated_at": now,
        "expires_at": now + ttl,
        "stages": {s: {"state": "pending", "attempts": 0} for s in STAGES},
        **fields,
    })


def ended(job: Job | None) -> FinalStatus | None:
    """The job's final status, or None while it runs (or when there is no job)."""
    if job is None:
        return None
    status = job["status"]
    return status if status == "completed" or status == "failed" else None


class Skip(enum.StrEnum):
    """Why a delivery does no work (StageStart, SegmentStart); the value is the dead letter's code."""

    UNKNOWN_JOB = "unknown-job"  # dead-lettered: a message we cannot trust
    FINAL = "final"  # the job ended: heal its final event
    DONE = "done"  # a duplicate of a finished stage
    HANDED_OFF = "handed-off"  # the hand-off is recorded: publish it again, finish the stage
    OUT_OF_ORDER = "out-of-order"  # dead-lettered: the stage before has not handed off (or no such fan-out)
    FANNED_IN = "fanned-in"  # a segment of a stage that handed off already


@dataclass(frozen=True, kw_only=True)
class StageStart:
    """May this delivery run `stage`? When not, `outcome` says what to do and `reason` why.
    `job`: the job as the decision left it (None: no such job)."""

    job: Job | None
    proceed: bool
    outcome: Skip | None = None
    reason: str = ""


def begin_stage(job: Job | None, stage: str, now: dt.datetime, *, beside: bool = False) -> tuple[StageStart, Updates | None]:
    """`beside`: the input is the stage before's plan, sent while that stage's fan-out still runs
    (render's ladder beside analysis, ARCHITECTURE.md invariant 4): the stage may begin once the
    stage before has recorded its fan-out; the status stays the earlier stage's until it hands off."""
    if job is None:
        return StageStart(job=None, proceed=False, outcome=Skip.UNKNOWN_JOB, reason="no such job"), None
    if job["status"] in FINAL:
        return StageStart(job=job, proceed=False, outcome=Skip.FINAL, reason=f"job already {job['status']}"), None
    record = job["stages"][stage]
    if record["state"] == "done":
        return StageStart(job=job, proceed=False, outcome=Skip.DONE, reason=f"{stage} already done"), None
    if record["state"] == HANDED_OFF:
        # Outputs recorded and the next message (maybe) published, then the delivery was
        # lost: publishing the recorded handoff again finishes the stage without new work.
        return StageStart(job=job, proceed=False, outcome=Skip.HANDED_OFF, reason=f"{stage} already handed off"), None
    index = STAGES.index(stage)
    before_handed_off = True
    if index > 0:
        before = STAGES[index - 1]
        previous = job["stages"][before]
        before_handed_off = previous["state"] in (HANDED_OFF, "done")
        fanning_out = previous["state"] in ("running", DEAD_LETTERED) and "count" in (previous.get("segments") or {})
        if not before_handed_off and not (beside and fanning_out):
            # Its input can only be legitimate once the stage before recorded its handoff (or, for
            # a plan sent beside, its fan-out).
            return StageStart(job=job, proceed=False, outcome=Skip.OUT_OF_ORDER,
                              reason=f"{stage} input arrived before {before} handed off"), None
    updates: Updates = {
        f"stages.{stage}.state": "running",
        f"stages.{stage}.attempts": record.get("attempts", 0) + 1,
        f"stages.{stage}.last_attempt_at": now,
        "updated_at": now,
    }
    if not record.get("started_at"):
        updates[f"stages.{stage}.started_at"] = now
    # The status names the earliest stage still working: `analyzing` while render's ladder runs beside it.
    if before_handed_off and forward(job["status"], RUNNING_STATUS[stage]):
        updates["status"] = RUNNING_STATUS[stage]
    if job.get("dead_letter") and before_handed_off:
        updates["dead_letter"] = DELETE  # resumed by a replay
    return StageStart(job=apply(job, updates), proceed=True), updates


class HandOff(enum.Enum):
    """What recording a stage's hand-off came to."""

    RECORDED = "recorded"  # publish the next message, then mark the stage done
    ENDED = "ended"  # the job ended meanwhile (cancelled) or is gone: publish nothing, write nothing more
    DUPLICATE = "duplicate"  # another delivery handed off first (a duplicate fan-in): it publishes


def hand_off(job: Job | None, stage: str, fields: Updates, handoff: Handoff | None,
             now: dt.datetime) -> tuple[HandOff, Updates | None]:
    """Record the stage's outputs and the message it is about to publish (kept so the sweep
    can re-drive the next stage exactly)."""
    if job is None or job["status"] in FINAL:
        return HandOff.ENDED, None
    if job["stages"][stage]["state"] in (HANDED_OFF, "done"):
        return HandOff.DUPLICATE, None
    updates: Updates = {f"stages.{stage}.state": HANDED_OFF, "updated_at": now, **fields}
    if handoff is not None:
        updates["handoff"] = handoff
    return HandOff.RECORDED, updates


def finished(stage: str, now: dt.datetime) -> Updates:
    """Its next message is published: the stage is done. Only the stage's own fields change,
    so this is a plain write (the next stage, already triggered, may be reading the job)."""
    return {
        f"stages.{stage}.state": "done",
        f"stages.{stage}.finished_at": now,
        f"stages.{stage}.error": DELETE,
        "updated_at": now,
    }


def transient_error(stage: str, reason: str, now: dt.datetime) -> Updates:
    return {f"stages.{stage}.error": reason, "updated_at": now}


# --- segments: a stage's work fanned out over Pub/Sub, fanned in once ----------------------------
# `stages.<stage>.segments` holds the plan and `count`. A finished segment is not written here: it
# is its own record beside the job (jobstore.py, create-if-absent), so hundreds finishing at once
# write hundreds of documents, not one. Completion is read by counting those records; of the few
# deliveries that may see them all, the one whose create of the claim record `<stage>-fan-in`
# succeeds merges and hands off; the others are told "claimed" at once (ARCHITECTURE.md, invariant 12).

# A fan-in claim held this long by a delivery that went silent may be taken over. Longer than
# the longest push ack deadline (600 s): the claimant's own request has ended by then, and its
# redelivery (same claimant) takes the claim back at once anyway.
FAN_IN_LEASE = dt.timedelta(seconds=660)


class FannedOut(enum.Enum):
    """What recording a fan-out came to (when the stage still runs)."""

    NEW = "new"  # recorded now
    AGAIN = "again"  # a redelivered input: the same fan-out, its finished records kept


def fan_out(job: Job | None, stage: str, count: int, plan: dict[str, Any],
            now: dt.datetime) -> tuple[FannedOut | None, Updates | None]:
    """The running stage splits its work into `count` segments. None: the stage is no longer running."""
    if job is None or job["status"] in FINAL:
        return None, None
    record = job["stages"][stage]
    if record["state"] != "running":
        return None, None
    segments = record.get("segments") or {}
    if segments.get("count") == count:
        # The same fan-out; a plan key that changed (render's `pictures`: the analysis arrived) is
        # recorded, the finished records are kept.
        changed = {f"stages.{stage}.segments.{k}": v for k, v in plan.items() if segments.get(k) != v}
        return FannedOut.AGAIN, ({**changed, "updated_at": now} if changed else None)
    return FannedOut.NEW, {f"stages.{stage}.segments": {**plan, "count": count}, "updated_at": now}


@dataclass(frozen=True, kw_only=True)
class SegmentStart:
    """May this delivery work on a segment? Fields as StageStart's; `outcome` when not:
    UNKNOWN_JOB, FINAL, FANNED_IN or OUT_OF_ORDER (no such fan-out)."""

    job: Job | None
    proceed: bool
    outcome: Skip | None = None
    reason: str = ""


def begin_segment(job: Job | None, stage: str, index: int, count: int,
                  now: dt.datetime) -> tuple[SegmentStart, Updates | None]:
    if job is None:
        return SegmentStart(job=None, proceed=False, outcome=Skip.UNKNOWN_JOB, reason="no such job"), None
    if job["status"] in FINAL:
        return SegmentStart(job=job, proceed=False, outcome=Skip.FINAL, reason=f"job already {job['status']}"), None
    record = job["stages"][stage]
    if record["state"] in (HANDED_OFF, "done"):
        return SegmentStart(job=job, proceed=False, outcome=Skip.FANNED_IN, reason=f"{stage} already handed off"), None
    segments = record.get("segments") or {}
    if record["state"] not in ("running", DEAD_LETTERED) or segments.get("count") != count or not 0 <= index < count:
        return SegmentStart(job=job, proceed=False, outcome=Skip.OUT_OF_ORDER,
                            reason=f"{stage} has no fan-out with segment {index} of {count}"), None
    if job["status"] != DEAD_LETTERED:
        return SegmentStart(job=job, proceed=True), None
    # Parked after a segment exhausted its delivery attempts; an operator's replay resumes it.
    updates: Updates = {"status": RUNNING_STATUS[stage], f"stages.{stage}.state": "running", "dead_letter": DELETE,
                        "updated_at": now}
    return SegmentStart(job=apply(job, updates), proceed=True), updates


class FanIn(enum.Enum):
    """Where a fan-out stands once this delivery's segment record is counted: ready_to_fan_in
    answers READY, PENDING or STALE; the store's claim_fan_in COMPLETE, CLAIMED, PENDING or STALE."""

    READY = "ready"  # every segment is in and the stage waits for its fan-in
    PENDING = "pending"  # segments remain
    STALE = "stale"  # the job ended or the stage fanned in
    COMPLETE = "complete"  # this delivery holds the fan-in claim: it merges and hands off
    CLAIMED = "claimed"  # another delivery holds the claim


def ready_to_fan_in(job: Job | None, stage: str, finished: int) -> FanIn:
    """`finished` segment records exist (counted after this delivery wrote its own)."""
    if job is None or job["status"] in FINAL or job["stages"][stage]["state"] in (HANDED_OFF, "done"):
        return FanIn.STALE
    segments = job["stages"][stage].get("segments") or {}
    if "count" not in segments:
        return FanIn.STALE
    return FanIn.READY if finished >= segments["count"] else FanIn.PENDING


class FanInClaim(TypedDict):
    """jobs/{job}/segments/{stage}-fan-in: who fans the stage in, since when. Without a `stage`
    field, so it never counts as a finished segment."""

    fan_in_of: str
    by: str  # a segment's delivery, or "input" for a re-driven stage input
    at: dt.datetime
    expires_at: dt.datetime


class SegmentRecord(TypedDict):
    """jobs/{job}/segments/{stage}-NNNN: one finished segment, deleted after the fan-in."""

    stage: str
    index: int
    done_at: dt.datetime
    expires_at: dt.datetime  # the Firestore TTL backstop for one whose fan-in never came
    usage: NotRequired[dict[str, Any]]  # what the segment used (summed at the fan-in: services/pipeline/usage.py)


def fan_in_claim(stage: str, claimant: str, now: dt.datetime, ttl: dt.timedelta) -> FanInClaim:
    return {"fan_in_of": stage, "by": claimant, "at": now, "expires_at": now + ttl}


def may_take_claim(claim: FanInClaim, claimant: str, now: dt.datetime) -> bool:
    """A claim already made is taken over only once it is older than FAN_IN_LEASE (its claimant
    went silent for good; the sweep re-drives the stage after that). Not by the claimant's own
    redelivery: Pub/Sub may deliver one message twice at once, and two fan-ins at once would
    each remove work files the other still reads."""
    return now - claim["at"] >= FAN_IN_LEASE


def fan_in_claim_id(stage: str) -> str:
    return f"{stage}-fan-in"


def segment_record(stage: str, index: int, now: dt.datetime, ttl: dt.timedelta,
                   used: dict[str, Any] | None = None) -> SegmentRecord:
    record: SegmentRecord = {"stage": stage, "index": index, "done_at": now, "expires_at": now + ttl}
    if used is not None:
        record["usage"] = used
    return record


def segment_record_id(stage: str, index: int) -> str:
    return f"{stage}-{index:04d}"


def park(job: Job | None, stage: str, reason: str, now: dt.datetime) -> tuple[bool, Updates | None]:
    """The last delivery attempt failed transiently: park the job, visibly, for operators."""
    if job is None or job["status"] in FINAL or job["stages"][stage]["state"] == "done":
        return False, None
    return True, {
        "status": DEAD_LETTERED,
        f"stages.{stage}.state": DEAD_LETTERED,
        f"stages.{stage}.error": reason,
        "dead_letter": {"stage": stage, "reason": reason, "at": now},
        "updated_at": now,
    }


def count_crash(job: Job | None, stage: str, reason: str, now: dt.datetime) -> tuple[int, Updates | None]:
    """A media child died by a signal on this job: counted, so a crash that reproduces on the
    same input ends as corrupt-media after a bounded number (services/media/sandbox.py)."""
    if job is None:
        return 0, None
    crashes = int(job["stages"][stage].get("crashes", 0)) + 1
    return crashes, {f"stages.{stage}.crashes": crashes, f"stages.{stage}.error": reason, "updated_at": now}


class EventBeingPublished(Exception):
    """Another delivery holds a fresh claim on the final event: retry this one later."""


def claim_final(job: Job | None, outcome: FinalStatus, fields: Updates, now: dt.datetime) -> tuple[Job | None, Updates | None]:
    """Move the job to its final `outcome` and claim the right to publish its one event.

    Result: the job to publish for, or None when the event is already out. A job that already
    ended the other way keeps its outcome (its event is the one published). Raises
    EventBeingPublished while another delivery holds a fresh claim.
    """
    if job is None:
        return None, None
    final = job.get("final_event")
    if final is not None and final["published"]:
        return None, None
    outcome_now = ended(job) or outcome
    if final is not None and now - final["claimed_at"] < FINAL_EVENT_LEASE and final["status"] == outcome_now:
        raise EventBeingPublished(f"job {job['job_id']}: final event is being published by another delivery")
    updates: Updates = {
        "final_event": {"id": f"{job['job_id']}/{outcome_now}", "status": outcome_now, "claimed_at": now,
                        "published": False},
        "updated_at": now,
    }
    if job["status"] not in FINAL:
        updates.update({"status": outcome_now, "finished_at": now, **fields})
        if outcome_now == "completed":
            updates["timings.ready_at"] = now
    return apply(job, updates), updates


class PlayableClaim(enum.Enum):
    """claim_playable's outcome: publish the event now, or not (out already, or not to be)."""

    CLAIMED = "claimed"  # this delivery publishes it
    BUSY = "busy"  # another delivery claimed it moments ago and is publishing it
    NO = "no"  # published already, or the job ended, is unknown or deleted


def claim_playable(job: Job | None, now: dt.datetime) -> tuple[PlayableClaim, Updates | None]:
    """The right to publish the job's one `playable` event, taken on the job (compare-and-set),
    which also records `timings.playable_at`. A claim left unpublished past FINAL_EVENT_LEASE
    (its process died) is taken again; the event's id is stable, so a copy can be dropped."""
    if job is None or job["status"] in FINAL or job.get("deleted"):
        return PlayableClaim.NO, None
    if (job.get("playable") or {}).get("published_at"):
        return PlayableClaim.NO, None
    claimed = (job.get("playable") or {}).get("claimed_at")
    if claimed is not None and now - claimed < FINAL_EVENT_LEASE:
        return PlayableClaim.BUSY, None
    updates: Updates = {"playable.claimed_at": now, "updated_at": now}
    if not (job.get("timings") or {}).get("playable_at"):  # a claim taken again keeps the first time
        updates["timings.playable_at"] = now
    return PlayableClaim.CLAIMED, updates


def playable_published(message_id: str, now: dt.datetime) -> Updates:
    return {"playable.published_at": now, "playable.message_id": message_id}


def final_published(message_id: str, now: dt.datetime) -> Updates:
    return {"final_event.published": True, "final_event.message_id": message_id, "final_event.published_at": now}


def failure_fields(stage: str, error_class: str, reason: str) -> Updates:
    """What a failed job records: the job-level error and the failing stage's record."""
    fields: Updates = {"error": {"stage": stage, "error_class": error_class, "reason": reason}}
    if stage in STAGES:
        fields[f"stages.{stage}.state"] = "failed"
        fields[f"stages.{stage}.error"] = reason
    return fields


def current_stage(job: Job) -> str:
    """The first stage not done: where the job stands (or would resume)."""
    for stage in STAGES:
        if job["stages"][stage]["state"] != "done":
            return stage
    return STAGES[-1]


@dataclass
class Redrive:
    """The sweep's decision for a job that made no progress: re-drive it, or give up."""

    redrive: bool
    stage: str
    attempt: int = 0
    reason: str = ""


def redrive(job: Job | None, max_redrives: int, now: dt.datetime) -> tuple[Redrive | None, Updates | None]:
    """Bounded: after `max_redrives` re-drives that did not finish the job, it ends failed,
    so no job waits forever whatever keeps failing (a bug, a dependency, a lost message)."""
    if job is None or job["status"] in FINAL:
        return None, None
    stage = current_stage(job)
    done = (job.get("sweep") or {}).get("redrives", 0)
    if done >= max_redrives:
        last = job["stages"][stage].get("error") or "no progress"
        reason = (f"gave up in {stage} after {done} re-drives by the stuck-job sweep "
                  f"(SWEEP_MAX_REDRIVES={max_redrives}); last error: {last}")
        return Redrive(False, stage, done, reason), None
    return Redrive(True, stage, done + 1), {"sweep.redrives": done + 1, "sweep.last_redrive_at": now, "updated_at": now}


def apply(job: Job, updates: Updates) -> Job:
    """The document as it reads after `updates` (dotted paths) are applied."""
    out: dict[str, Any] = _copy(job)
    for path, value in updates.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = _copy(value)
    # Dotted paths are not checked against the document's type: the decisions above write its keys.
    return cast(Job, out)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
