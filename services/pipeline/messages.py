"""Stage input messages rebuilt from a job (the first stage's; later ones are the stored handoff)."""
from __future__ import annotations

from .jobstate import Job
from .jobstore import to_json, utcnow
from .payloads import Ingested


def ingested_message(job: Job) -> Ingested:
    """The media-ingested payload of a job: what ingest publishes, and what the sweep
    republishes to restart a job in analyze."""
    return {
        "job_id": job["job_id"],
        "kind": job["kind"],
        "source": job["source"],
        "submitted_at": to_json({"t": job.get("created_at") or utcnow()})["t"],
    }
