"""Re-drives jobs stuck in a stage: no progress for longer than the deadline.

A job can stall when its message was lost to a crash between steps or an outage of the bus
(the local Pub/Sub emulator also forgets everything on restart). The sweep republishes the
input of the first stage not yet done — rebuilt from the job for analyze, otherwise the
`handoff` the previous stage stored — and stages, being idempotent, take it from there.
"""
from __future__ import annotations

import datetime as dt
import logging

from ..common.logs import log
from ..common.runtime import Runtime
from ..common.status import ACTIVE, STAGES, utcnow
from ..ingest.jobs import ingested_message

logger = logging.getLogger("mediarelay.sweep")
STAGE_INPUT = {"analyze": "media-ingested", "render": "media-analyzed", "notify": "media-rendered"}


def input_message(job: dict) -> tuple[str, str, dict] | None:
    """(stage, topic, payload) that restarts `job` where it stands, or None."""
    for stage in STAGES:
        if job["stages"][stage]["state"] != "done":
            topic = STAGE_INPUT[stage]
            if stage == "analyze":
                return stage, topic, ingested_message(job)
            handoff = job.get("handoff") or {}
            if handoff.get("topic") == topic:
                return stage, topic, handoff["payload"]
            return None
    return None


def sweep(rt: Runtime, older_than: dt.timedelta, *, dry_run: bool = False, limit: int = 500) -> list[dict]:
    cutoff = utcnow() - older_than
    results = []
    for job in rt.jobs.find_stuck(ACTIVE, cutoff, limit):
        found = input_message(job)
        row = {"job_id": job["job_id"], "status": job["status"], "updated_at": job["updated_at"].isoformat()}
        if found is None:
            row.update(action="none", note="no stage input can be rebuilt; inspect the job")
        else:
            stage, topic, payload = found
            row.update(stage=stage, topic=topic, action="would re-drive" if dry_run else "re-driven")
            if not dry_run:
                rt.bus.publish(topic, payload, job_id=job["job_id"], attributes={"redriven": "sweep"})
                rt.jobs.touch(job["job_id"])  # not picked again before the stage had its chance
        log(logger, logging.INFO, f"sweep: {row['action']}", **row)
        results.append(row)
    return results
