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
from dataclasses import dataclass

# The pipeline's stages, in order; each is also the service that runs it.
STAGES = ("analyze", "render", "notify")
FINAL = ("completed", "failed")
# Parked after a stage exhausted its delivery attempts: not final (no event yet), so an
# operator's replay can resume the job, a purge ends it failed, and the sweep bounds it.
DEAD_LETTERED = "dead-lettered"
ACTIVE = ("received", "analyzing", "rendering", "notifying")
STATUS_RANK = {"received": 0, "analyzing": 1, "rendering": 2, "notifying": 3, "completed": 4, "failed": 4}
# Status while a stage runs (it stays so until the next stage begins).
RUNNING_STATUS = {"analyze": "analyzing", "render": "rendering", "notify": "notifying"}
# A stage's record moves pending -> running -> handed-off (outputs recorded, next message
# about to be published) -> done; or to failed / dead-lettered.
HANDED_OFF = "handed-off"
# A delivery that claimed the final event and went silent is presumed dead after this.
FINAL_EVENT_LEASE = dt.timedelta(seconds=60)


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()  # as an update value: remove the field


def forward(current: str, new: str) -> bool:
    """Statuses only move forward; a parked job may resume at any stage."""
    if current == DEAD_LETTERED:
        return new != "received"
    return current not in FINAL and STATUS_RANK[new] > STATUS_RANK[current]


def new_job(job_id: str, fields: dict, now: dt.datetime, ttl: dt.timedelta) -> dict:
    return {
        "job_id": job_id,
        "status": "received",
        "created_at": now,
        "updated_at": now,
        "expires_at": now + ttl,
        "stages": {s: {"state": "pending", "attempts": 0} for s in STAGES},
        **fields,
    }


@dataclass
class StageStart:
    """May this delivery run `stage`? When not, `reason` says why and `outcome` what to do."""

    job: dict
    proceed: bool
    reason: str = ""
    # When not proceeding: "unknown-job" | "final" | "done" | "handed-off" | "out-of-order"
    outcome: str = ""


def begin_stage(job: dict | None, stage: str, now: dt.datetime) -> tuple[StageStart, dict | None]:
    if job is None:
        return StageStart({}, False, "no such job", "unknown-job"), None
    if job["status"] in FINAL:
        return StageStart(job, False, f"job already {job['status']}", "final"), None
    record = job["stages"][stage]
    if record["state"] == "done":
        return StageStart(job, False, f"{stage} already done", "done"), None
    if record["state"] == HANDED_OFF:
        # Outputs recorded and the next message (maybe) published, then the delivery was
        # lost: publishing the recorded handoff again finishes the stage without new work.
        return StageStart(job, False, f"{stage} already handed off", "handed-off"), None
    index = STAGES.index(stage)
    if index > 0:
        before = STAGES[index - 1]
        if job["stages"][before]["state"] not in (HANDED_OFF, "done"):
            # Its input can only be legitimate once the stage before recorded its handoff.
            return StageStart(job, False, f"{stage} input arrived before {before} handed off", "out-of-order"), None
    updates = {
        f"stages.{stage}.state": "running",
        f"stages.{stage}.attempts": record.get("attempts", 0) + 1,
        f"stages.{stage}.last_attempt_at": now,
        "updated_at": now,
    }
    if not record.get("started_at"):
        updates[f"stages.{stage}.started_at"] = now
    if forward(job["status"], RUNNING_STATUS[stage]):
        updates["status"] = RUNNING_STATUS[stage]
    if job.get("dead_letter"):
        updates["dead_letter"] = DELETE  # resumed by a replay
    return StageStart(apply(job, updates), True), updates


def hand_off(job: dict | None, stage: str, fields: dict, handoff: dict | None, now: dt.datetime) -> tuple[bool, dict | None]:
    """Record the stage's outputs and the message it is about to publish (kept so the sweep
    can re-drive the next stage exactly). False: the job ended meanwhile (cancelled): publish
    nothing, write nothing more."""
    if job is None or job["status"] in FINAL or job["stages"][stage]["state"] in (HANDED_OFF, "done"):
        return False, None  # ended, or another delivery handed off first (a duplicate fan-in)
    updates = {f"stages.{stage}.state": HANDED_OFF, "updated_at": now, **fields}
    if handoff is not None:
        updates["handoff"] = handoff
    return True, updates


def finished(stage: str, now: dt.datetime) -> dict:
    """Its next message is published: the stage is done. Only the stage's own fields change,
    so this is a plain write (the next stage, already triggered, may be reading the job)."""
    return {
        f"stages.{stage}.state": "done",
        f"stages.{stage}.finished_at": now,
        f"stages.{stage}.error": DELETE,
        "updated_at": now,
    }


def transient_error(stage: str, reason: str, now: dt.datetime) -> dict:
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


def fan_out(job: dict | None, stage: str, count: int, plan: dict, now: dt.datetime) -> tuple[str | None, dict | None]:
    """The running stage splits its work into `count` segments. Result: "new" (recorded now),
    "again" (a redelivered input: the same fan-out, its finished records kept), or None when
    the stage is no longer running."""
    if job is None or job["status"] in FINAL:
        return None, None
    record = job["stages"][stage]
    if record["state"] != "running":
        return None, None
    segments = record.get("segments") or {}
    if segments.get("count") == count:
        return "again", None
    return "new", {f"stages.{stage}.segments": {**plan, "count": count}, "updated_at": now}


@dataclass
class SegmentStart:
    """May this delivery work on a segment? `outcome` when not: "unknown-job" | "final" |
    "fanned-in" (the stage already handed off) | "out-of-order" (no such fan-out)."""

    job: dict
    proceed: bool
    outcome: str = ""
    reason: str = ""


def begin_segment(job: dict | None, stage: str, index: int, count: int, now: dt.datetime) -> tuple[SegmentStart, dict | None]:
    if job is None:
        return SegmentStart({}, False, "unknown-job", "no such job"), None
    if job["status"] in FINAL:
        return SegmentStart(job, False, "final", f"job already {job['status']}"), None
    record = job["stages"][stage]
    if record["state"] in (HANDED_OFF, "done"):
        return SegmentStart(job, False, "fanned-in", f"{stage} already handed off"), None
    segments = record.get("segments") or {}
    if record["state"] not in ("running", DEAD_LETTERED) or segments.get("count") != count or not 0 <= index < count:
        return SegmentStart(job, False, "out-of-order", f"{stage} has no fan-out with segment {index} of {count}"), None
    if job["status"] != DEAD_LETTERED:
        return SegmentStart(job, True), None
    # Parked after a segment exhausted its delivery attempts; an operator's replay resumes it.
    updates = {"status": RUNNING_STATUS[stage], f"stages.{stage}.state": "running", "dead_letter": DELETE, "updated_at": now}
    return SegmentStart(apply(job, updates), True), updates


def ready_to_fan_in(job: dict | None, stage: str, finished: int) -> str:
    """`finished` segment records exist (counted after this delivery wrote its own). "ready": every
    segment is in and the stage waits for its fan-in; "pending": segments remain; "stale": the job
    ended or the stage fanned in."""
    if job is None or job["status"] in FINAL or job["stages"][stage]["state"] in (HANDED_OFF, "done"):
        return "stale"
    segments = job["stages"][stage].get("segments") or {}
    if "count" not in segments:
        return "stale"
    return "ready" if finished >= segments["count"] else "pending"


def fan_in_claim(stage: str, claimant: str, now: dt.datetime, ttl: dt.timedelta) -> dict:
    """The claim record: who fans the stage in (a segment's delivery, or "input" for a re-driven
    stage input), since when. Without a `stage` field, so it never counts as a finished segment."""
    return {"fan_in_of": stage, "by": claimant, "at": now, "expires_at": now + ttl}


def may_take_claim(claim: dict, claimant: str, now: dt.datetime) -> bool:
    """A claim already made: the claimant's own redelivery takes it back (it died mid fan-in),
    anyone takes it once it is older than FAN_IN_LEASE (its claimant went silent for good)."""
    return claim.get("by") == claimant or now - claim["at"] >= FAN_IN_LEASE


def fan_in_claim_id(stage: str) -> str:
    return f"{stage}-fan-in"


def segment_record(stage: str, index: int, now: dt.datetime, ttl: dt.timedelta) -> dict:
    """One finished segment (jobs/{job}/segments/{stage}-{index}): deleted after the fan-in; the
    expiry is the Firestore TTL backstop for one whose fan-in never came."""
    return {"stage": stage, "index": index, "done_at": now, "expires_at": now + ttl}


def segment_record_id(stage: str, index: int) -> str:
    return f"{stage}-{index:04d}"


def park(job: dict | None, stage: str, reason: str, now: dt.datetime) -> tuple[bool, dict | None]:
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


def count_crash(job: dict | None, stage: str, reason: str, now: dt.datetime) -> tuple[int, dict | None]:
    """A media child died by a signal on this job: counted, so a crash that reproduces on the
    same input ends as corrupt-media after a bounded number (services/media/sandbox.py)."""
    if job is None:
        return 0, None
    crashes = int(job["stages"][stage].get("crashes", 0)) + 1
    return crashes, {f"stages.{stage}.crashes": crashes, f"stages.{stage}.error": reason, "updated_at": now}


class EventBeingPublished(Exception):
    """Another delivery holds a fresh claim on the final event: retry this one later."""


def claim_final(job: dict | None, outcome: str, fields: dict, now: dt.datetime) -> tuple[dict | None, dict | None]:
    """Move the job to its final `outcome` and claim the right to publish its one event.

    Result: the job to publish for, or None when the event is already out. A job that already
    ended the other way keeps its outcome (its event is the one published). Raises
    EventBeingPublished while another delivery holds a fresh claim.
    """
    if job is None:
        return None, None
    final = job.get("final_event") or {}
    if final.get("published"):
        return None, None
    outcome_now = job["status"] if job["status"] in FINAL else outcome
    claimed = final.get("claimed_at")
    if claimed and now - claimed < FINAL_EVENT_LEASE and final.get("status") == outcome_now:
        raise EventBeingPublished(f"job {job['job_id']}: final event is being published by another delivery")
    updates = {
        "final_event": {"id": f"{job['job_id']}/{outcome_now}", "status": outcome_now, "claimed_at": now,
                        "published": False},
        "updated_at": now,
    }
    if job["status"] not in FINAL:
        updates.update({"status": outcome_now, "finished_at": now, **fields})
    return apply(job, updates), updates


def final_published(message_id: str, now: dt.datetime) -> dict:
    return {"final_event.published": True, "final_event.message_id": message_id, "final_event.published_at": now}


def failure_fields(stage: str, error_class: str, reason: str) -> dict:
    """What a failed job records: the job-level error and the failing stage's record."""
    fields: dict[str, object] = {"error": {"stage": stage, "error_class": error_class, "reason": reason}}
    if stage in STAGES:
        fields[f"stages.{stage}.state"] = "failed"
        fields[f"stages.{stage}.error"] = reason
    return fields


def current_stage(job: dict) -> str:
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


def redrive(job: dict | None, max_redrives: int, now: dt.datetime) -> tuple[Redrive | None, dict | None]:
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


def apply(job: dict, updates: dict) -> dict:
    """The document as it reads after `updates` (dotted paths) are applied."""
    out = _copy(job)
    for path, value in updates.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = _copy(value)
    return out


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
