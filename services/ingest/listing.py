"""`GET /v1/jobs`: the caller's jobs, newest first, a page at a time.

Served by the composite indexes terraform/firestore.tf declares (owner, created_at DESC) and
(owner, status, created_at DESC). The cursor is the last job id of a page: the next page
starts after that document.
"""
from __future__ import annotations

from typing import cast

from google.cloud.firestore_v1.base_query import FieldFilter

from ..pipeline.jobstate import DEAD_LETTERED, STATUS_RANK, Job
from ..pipeline.jobstore import JobStore, firestore_of
from ..pipeline.params import bad_parameter
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime
from .public_job import public_job

STATUSES = (*STATUS_RANK, DEAD_LETTERED)
MAX_PAGE = 100


@retried("firestore")
def list_jobs(rt: Runtime, owner: str, status: str | None, limit: int, cursor: str | None) -> dict:
    if status is not None and status not in STATUSES:
        raise bad_parameter("status", f"status must be one of: {', '.join(STATUSES)}")
    jobs = firestore_of(rt.jobs).collection(JobStore.collection)
    query = jobs.where(filter=FieldFilter("owner", "==", owner))
    if status:
        query = query.where(filter=FieldFilter("status", "==", status))
    query = query.order_by("created_at", direction="DESCENDING")
    if cursor:
        after = jobs.document(cursor).get() if cursor.isalnum() and len(cursor) <= 64 else None
        if after is None or not after.exists or (after.to_dict() or {}).get("owner") != owner:
            raise bad_parameter("cursor", "cursor is not one this listing handed out")
        query = query.start_after(after)
    # Deleted jobs' tombstones are left out (a page may then hold fewer than `limit`; the cursor still works).
    found = [cast(Job, snap.to_dict()) for snap in query.limit(limit + 1).stream()]  # a query's snapshots exist
    page = found[:limit]
    body: dict = {"jobs": [public_job(rt, job, with_urls=False) for job in page if not job.get("deleted")]}
    body["next_cursor"] = page[-1]["job_id"] if len(found) > limit else None
    return body
