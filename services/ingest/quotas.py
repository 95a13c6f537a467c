"""Per-client quotas (uploads and bytes per UTC day) and the usage statistics behind them.

Usage is counted in sharded counters `usage/{client}_{day}`; limits are QUOTA_UPLOADS_PER_DAY
and QUOTA_BYTES_PER_DAY unless the client's document overrides them (`quotas`). The check
reads, the count writes afterwards: concurrent uploads of one client may overshoot a limit
by the few that raced, never by more.
"""
from __future__ import annotations

import datetime as dt

from google.cloud.firestore_v1.base_query import FieldFilter

from ..common.errors import HTTPProblem
from ..pipeline.counters import ShardedCounters
from ..pipeline.jobstate import ACTIVE, DEAD_LETTERED
from ..pipeline.jobstore import JobStore, firestore_of, utcnow
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime
from .clients import Client

USAGE = "usage"
OUTCOMES = ("completed", "failed")


def _day(now: dt.datetime | None = None) -> str:
    return (now or utcnow()).strftime("%Y-%m-%d")


def _counters(rt: Runtime) -> ShardedCounters:
    return ShardedCounters(firestore_of(rt.jobs), USAGE, rt.settings.quota_counter_shards)


def limits(rt: Runtime, client: Client) -> dict:
    return {"uploads_per_day": int(client.quotas.get("uploads_per_day", rt.settings.quota_uploads_per_day)),
            "bytes_per_day": int(client.quotas.get("bytes_per_day", rt.settings.quota_bytes_per_day))}


def check(rt: Runtime, client: Client, size: int) -> None:
    """429 with Retry-After (until the next UTC day) if one more upload of `size` bytes is too many."""
    used = _counters(rt).total(f"{client.client_id}_{_day()}")
    lim = limits(rt, client)
    over = None
    if used.get("uploads", 0) + 1 > lim["uploads_per_day"]:
        over = f"{used.get('uploads', 0)} uploads today reach the quota of {lim['uploads_per_day']} (QUOTA_UPLOADS_PER_DAY)"
    elif used.get("bytes", 0) + size > lim["bytes_per_day"]:
        over = (f"{used.get('bytes', 0)} + {size} bytes today exceed the quota of {lim['bytes_per_day']} "
                "(QUOTA_BYTES_PER_DAY)")
    if over:
        now = utcnow()
        tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        raise HTTPProblem(429, "Quota exceeded", f"{over}; nothing was stored",
                          headers={"Retry-After": str(max(1, int((tomorrow - now).total_seconds())))})


def count(rt: Runtime, client: Client, size: int) -> None:
    day = _day()
    _counters(rt).add(f"{client.client_id}_{day}", {"client_id": client.client_id, "day": day},
                      {"uploads": 1, "bytes": size})


@retried("firestore")
def _outcomes(rt: Runtime, client_id: str, day: str) -> dict:
    """Jobs created that day by status group, by count() aggregations over the listing index."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    jobs = firestore_of(rt.jobs).collection(JobStore.collection)
    out = {}
    for name, statuses in (("completed", ["completed"]), ("failed", ["failed"]),
                           ("in_progress", [*ACTIVE, DEAD_LETTERED])):
        total = 0
        for status in statuses:
            query = (jobs.where(filter=FieldFilter("owner", "==", client_id))
                     .where(filter=FieldFilter("status", "==", status))
                     .where(filter=FieldFilter("created_at", ">=", start))
                     .where(filter=FieldFilter("created_at", "<", start + dt.timedelta(days=1))))
            total += int(query.count().get()[0][0].value)
        out[name] = total
    return out


def stats(rt: Runtime, client: Client, days: int, everyone: bool) -> list[dict]:
    """Rows per day x client (the caller's own; every client's for an operator who asks)."""
    today = utcnow()
    wanted = [_day(today - dt.timedelta(days=i)) for i in range(days)]
    counters = _counters(rt)
    rows = []
    for day in wanted:
        clients = ([c["client_id"] for c in counters.find(day=day)] if everyone else [client.client_id])
        for client_id in sorted(set(clients)):
            used = counters.total(f"{client_id}_{day}")
            rows.append({"day": day, "client_id": client_id, "uploads": used.get("uploads", 0),
                         "bytes": used.get("bytes", 0), **_outcomes(rt, client_id, day)})
    return rows
