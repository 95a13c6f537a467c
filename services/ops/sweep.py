"""Re-drives jobs stuck in a stage — no progress for longer than the deadline — a bounded
number of times, then ends them failed: no job waits forever, whatever keeps failing.

A job stalls when its message was lost to a crash or a bus outage (the local Pub/Sub emulator
forgets everything on restart), when a stage keeps failing (a bug, a dependency) until its
message is dead-lettered, or when the write parking it failed. The sweep republishes the
input of the first stage not yet done — rebuilt from the job for the first stage, otherwise
the `handoff` the previous stage stored — and stages, being idempotent, take it from there.
A video's render running beside its analysis is re-driven with it: analyze's input sends the plan
to render again, which republishes its ladder segments not recorded yet.
After SWEEP_MAX_REDRIVES re-drives the job ends `failed` with its one event.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from ..common.logs import log
from ..pipeline import jobstate
from ..pipeline.handon import publish_final_event
from ..pipeline.jobstate import Job
from ..pipeline.jobstore import utcnow
from ..pipeline.messages import ingested_message
from ..pipeline.runtime import Runtime

logger = logging.getLogger("mediarelay.sweep")
# Parked jobs are swept too: an operator's replay or purge is the fast way out, the bound the sure one.
SWEPT_STATUSES = (*jobstate.ACTIVE, jobstate.DEAD_LETTERED)


def input_message(rt: Runtime, job: Job, stage: str) -> tuple[str, Mapping[str, Any]] | None:
    """(topic, payload) that restarts `job` at `stage`, or None when it cannot be rebuilt."""
    topic = rt.topology.input_topic(stage)
    if stage == jobstate.STAGES[0]:
        return topic, ingested_message(job)
    handoff = job.get("handoff")
    if handoff is not None and handoff["topic"] == topic:
        return topic, handoff["payload"]
    return None


def _segments_progressing(rt: Runtime, job: Job, cutoff: dt.datetime) -> bool:
    """A fanned-out stage writes nothing on its job while its segments finish (each writes its own
    record: ARCHITECTURE.md, invariant 12), so a long fan-out's progress is its newest record, of
    any stage still fanned out (render's ladder runs beside analyze's segments)."""
    for stage in jobstate.STAGES:
        record = job["stages"][stage]
        if record.get("segments") and record["state"] not in (jobstate.HANDED_OFF, "done"):
            done = rt.jobs.segments_done(job["job_id"], stage)
            if done and max(done.values()) >= cutoff:
                return True
    return False


def sweep(rt: Runtime, older_than: dt.timedelta, *, dry_run: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    cutoff = utcnow() - older_than
    max_redrives = rt.settings.sweep_max_redrives
    results = []
    for found in rt.jobs.find_stuck(SWEPT_STATUSES, cutoff, limit):
        if _segments_progressing(rt, found, cutoff):
            continue
        row = _redrive(rt, found, max_redrives, dry_run)
        if row is None:
            continue  # ended meanwhile
        log(logger, logging.INFO, f"sweep: {row['action']}", **row)
        results.append(row)
    return results


def _redrive(rt: Runtime, found: Job, max_redrives: int, dry_run: bool) -> dict[str, Any] | None:
    """One job's re-drive (counted on the job, bounded by SWEEP_MAX_REDRIVES); None if it ended meanwhile."""
    job_id = found["job_id"]
    row: dict[str, Any] = {"job_id": job_id, "status": found["status"], "updated_at": found["updated_at"].isoformat()}
    if dry_run:
        decision, _ = jobstate.redrive(found, max_redrives, utcnow())
    else:
        decision = rt.jobs.redrive(job_id, max_redrives)  # counted on the job, compare-and-set
    if decision is None:
        return None  # ended meanwhile
    row.update(stage=decision.stage, redrives=decision.attempt)
    if not decision.redrive:
        row.update(action="would fail" if dry_run else "failed", note=decision.reason)
        if not dry_run:
            publish_final_event(rt, job_id, "failed", jobstate.failure_fields(decision.stage, "stuck", decision.reason))
    elif (message := input_message(rt, found, decision.stage)) is None:
        row.update(action="none", note="no stage input can be rebuilt; the next sweep ends it failed")
    else:
        topic, payload = message
        row.update(topic=topic, action="would re-drive" if dry_run else "re-driven")
        if not dry_run:
            rt.bus.publish(topic, payload, job_id=job_id, attributes={"redriven": "sweep"})
    return row


def redrive_one(rt: Runtime, job_id: str, *, dry_run: bool = False) -> dict[str, Any] | None:
    """An operator's re-drive of one job, whatever its age: the sweep's own step (same bound)."""
    found = rt.jobs.get(job_id)
    if found is None or found["status"] in jobstate.FINAL:
        return None
    row = _redrive(rt, found, rt.settings.sweep_max_redrives, dry_run)
    if row is not None:
        log(logger, logging.INFO, f"re-drive: {row['action']}", **row)
    return row
