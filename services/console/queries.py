"""Every Firestore query the console issues, in one place, with the shape each needs indexed.

Jobs are listed newest first with any mix of equality filters (state, client, kind, error class)
and a created_at range. Firestore serves a mix of equality filters on one order by merging the
composite indexes (field, created_at DESC) of each filter, so one index per filter field is
declared in terraform/firestore.tf, not one per combination; tests/unit/test_console_indexes.py
checks that every shape below is covered. The emulator needs no index: that test is the guard.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..pipeline.jobstate import DEAD_LETTERED, STATUS_RANK, Job
from ..pipeline.jobstore import JobStore, firestore_of
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime

STATES = (*STATUS_RANK, DEAD_LETTERED)
KINDS = ("image", "video")
# The Jobs page's filters: query parameter -> field of the job document (equality).
EQUALITY_FILTERS = {"state": "status", "client": "owner", "kind": "kind", "error_class": "error.error_class"}
JOBS_ORDER = ("created_at", "DESCENDING")
# The Health page: jobs finished since a time, newest first (one field: its automatic index).
FINISHED_ORDER = ("finished_at", "DESCENDING")


@dataclass(frozen=True)
class JobFilters:
    state: str | None = None
    client: str | None = None
    kind: str | None = None
    error_class: str | None = None
    since: dt.datetime | None = None  # created at or after
    until: dt.datetime | None = None  # created before

    def equalities(self) -> dict[str, str]:
        return {field: value for name, field in EQUALITY_FILTERS.items() if (value := getattr(self, name))}


def query_shapes() -> list[tuple[tuple[str, ...], tuple[str, str]]]:
    """(equality fields, order) of every jobs query the console can issue (the index test reads this)."""
    fields = list(EQUALITY_FILTERS.values())
    shapes = []
    for mask in range(1 << len(fields)):
        chosen = tuple(f for i, f in enumerate(fields) if mask >> i & 1)
        shapes.append((chosen, JOBS_ORDER))
    shapes.append(((), FINISHED_ORDER))
    return shapes


def _jobs(rt: Runtime) -> firestore.CollectionReference:
    return firestore_of(rt.jobs).collection(JobStore.collection)


def _filtered(rt: Runtime, f: JobFilters, *, without_state: bool = False) -> Any:
    query: Any = _jobs(rt)
    for field, value in f.equalities().items():
        if not (without_state and field == "status"):
            query = query.where(filter=FieldFilter(field, "==", value))
    if f.since:
        query = query.where(filter=FieldFilter("created_at", ">=", f.since))
    if f.until:
        query = query.where(filter=FieldFilter("created_at", "<", f.until))
    return query


@retried("firestore")
def list_jobs(rt: Runtime, f: JobFilters, limit: int, after: str | None = None) -> list[Job]:
    query = _filtered(rt, f).order_by(JOBS_ORDER[0], direction=JOBS_ORDER[1])
    if after:
        snap = _jobs(rt).document(after).get()
        if snap.exists:
            query = query.start_after(snap)
    return [cast(Job, s.to_dict()) for s in query.limit(limit).stream()]


@retried("firestore")
def counts_per_state(rt: Runtime, f: JobFilters) -> dict[str, int]:
    """Jobs per state under the other filters: one count() aggregation each (an index read, not the jobs)."""
    base = _filtered(rt, f, without_state=True)
    return {state: int(base.where(filter=FieldFilter("status", "==", state)).count().get()[0][0].value)
            for state in STATES}


@retried("firestore")
def finished_since(rt: Runtime, since: dt.datetime, limit: int) -> list[Job]:
    query = (_jobs(rt).where(filter=FieldFilter("finished_at", ">=", since))
             .order_by(FINISHED_ORDER[0], direction=FINISHED_ORDER[1]).limit(limit))
    return [cast(Job, s.to_dict()) for s in query.stream()]


@retried("firestore")
def segment_records(rt: Runtime, job_id: str) -> list[dict[str, Any]]:
    """A fan-out's finished-segment records while they exist (the fan-in deletes them)."""
    coll = _jobs(rt).document(job_id).collection("segments")
    return [{"id": s.id, **(s.to_dict() or {})} for s in coll.stream()]
