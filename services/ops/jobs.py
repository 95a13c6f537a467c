"""Operators' actions on one job (the CLI's `mediarelay jobs ...` calls these)."""
from __future__ import annotations

from ..pipeline import jobstate
from ..pipeline.handon import publish_final_event
from ..pipeline.runtime import Runtime


class NoSuchJob(LookupError):
    pass


def cancel(rt: Runtime, job_id: str, reason: str | None = None) -> dict:
    """End the job `failed` (error class `cancelled`) with its one event. A stage still working
    on it stops at its next check (before an output write, at a budget check, at hand-off) and
    writes nothing more."""
    job = rt.jobs.get(job_id)
    if job is None:
        raise NoSuchJob(job_id)
    if job["status"] in jobstate.FINAL:
        return {"job_id": job_id, "status": job["status"], "action": "none", "note": f"already {job['status']}"}
    stage = jobstate.current_stage(job)
    text = f"cancelled by an operator: {reason}" if reason else "cancelled by an operator"
    published = publish_final_event(rt, job_id, "failed", jobstate.failure_fields(stage, "cancelled", text))
    after = rt.jobs.get(job_id)
    status = after["status"] if after is not None else None
    return {"job_id": job_id, "status": status, "action": "cancelled" if published else "none", "stage": stage}
