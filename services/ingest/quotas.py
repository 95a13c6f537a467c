"""Per-client quotas (uploads and bytes per UTC day), hard under any concurrency, and the usage
statistics behind them.

Usage lives in `usage/{client}_{day}` and its QUOTA_COUNTER_SHARDS shard documents. The quota is
split between the shards (an escrow): shard i may hold at most its part of each limit (`parts`).
A reservation reads the shards (one query), takes from each, from a random one on, what is left
of its part until it has what the upload needs, and writes only the shards it took from, all
or nothing and only if they did not change since they were read (compare-and-set on
update_time, as the job store: no read-write transaction, whose locks a burst would queue on).
No shard ever holds more than its part, so the sum never exceeds the quota, however many uploads
race; a reservation usually writes one shard, so one client's concurrent uploads rarely
conflict and no document is hot (DESIGN §4). A refusal has read every shard: its message gives
the day's usage.

A reservation is given back (`release`) when the upload does not happen; a signed or resumable
upload keeps its reservation at the announced size until finalize settles it at the actual
size (grants.py).
"""
from __future__ import annotations

import datetime as dt
import functools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..common.errors import HTTPProblem, TransientError
from ..pipeline.counters import ShardedCounters
from ..pipeline.jobstate import ACTIVE, DEAD_LETTERED
from ..pipeline.jobstore import JobStore, firestore_of, utcnow
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime
from .clients import Client

USAGE = "usage"
OUTCOMES = ("completed", "failed")
KINDS = ("uploads", "bytes")
SETTING = {"uploads": "QUOTA_UPLOADS_PER_DAY", "bytes": "QUOTA_BYTES_PER_DAY"}
# A reservation reads the shards, then writes the ones it takes from only if they did not change
# meanwhile; under a burst the losers of a conflict read again, after a random pause. Each round
# some upload wins, so a burst of B uploads needs at most B rounds; these bound the pathological case.
CAS_ATTEMPTS = 100
CAS_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class Reservation:
    """What one upload took from its client's day: {shard: {"uploads": n, "bytes": n}}."""

    counter_id: str
    takes: dict[int, dict[str, int]]

    def to_doc(self) -> dict:
        return {"counter_id": self.counter_id, "takes": {str(i): t for i, t in self.takes.items()}}

    @classmethod
    def from_doc(cls, doc: dict) -> Reservation:
        return cls(doc["counter_id"], {int(i): dict(t) for i, t in doc["takes"].items()})

    def total(self, kind: str) -> int:
        return sum(t.get(kind, 0) for t in self.takes.values())


def parts(limit: int, shards: int) -> list[int]:
    """Shard i's part of `limit`; the parts sum to the limit exactly."""
    return [limit // shards + (1 if i < limit % shards else 0) for i in range(shards)]


def plan(order: Iterable[int], read: Callable[[int], dict], shares: dict[str, list[int]],
         need: dict[str, int]) -> tuple[dict[int, dict[str, int]] | None, dict[str, int]]:
    """Walk the shards in `order`, reading each (`read(i)` -> its usage) and taking what is left
    of its share until `need` is met. Returns (takes, usage read); takes is None when every shard
    together has too little left (then the usage read is the whole day's)."""
    left = dict(need)
    takes: dict[int, dict[str, int]] = {}
    seen = {k: 0 for k in need}
    for i in order:
        used = read(i)
        take = {}
        for k in need:
            seen[k] += used.get(k, 0)
            n = min(left[k], max(0, shares[k][i] - used.get(k, 0)))
            if n:
                take[k], left[k] = n, left[k] - n
        if take:
            takes[i] = take
        if not any(left.values()):
            return takes, seen
    return None, seen


def _day(now: dt.datetime | None = None) -> str:
    return (now or utcnow()).strftime("%Y-%m-%d")


def _counters(rt: Runtime) -> ShardedCounters:
    return ShardedCounters(firestore_of(rt.jobs), USAGE, rt.settings.quota_counter_shards)


def _shard(db: firestore.Client, counter_id: str, i: int):
    return db.collection(USAGE).document(counter_id).collection("shards").document(str(i))


def limits(rt: Runtime, client: Client) -> dict:
    return {"uploads_per_day": int(client.quotas.get("uploads_per_day", rt.settings.quota_uploads_per_day)),
            "bytes_per_day": int(client.quotas.get("bytes_per_day", rt.settings.quota_bytes_per_day))}


def reserve(rt: Runtime, client: Client, size: int) -> Reservation:
    """Take one upload of `size` bytes from the client's quota for today, or 429 with Retry-After
    (until the next UTC day) if it does not fit. Nothing else can take the same room."""
    lim = limits(rt, client)
    n = rt.settings.quota_counter_shards
    shares = {"uploads": parts(lim["uploads_per_day"], n), "bytes": parts(lim["bytes_per_day"], n)}
    need = {"uploads": 1, "bytes": size}
    day = _day()
    counter_id = f"{client.client_id}_{day}"
    db = firestore_of(rt.jobs)
    for _ in range(CAS_ATTEMPTS):
        start = random.randrange(n)  # spreads one client's concurrent uploads over the shards
        snaps = _read_shards(db, counter_id)
        # The whole day first (every shard, also those of an earlier QUOTA_COUNTER_SHARDS): after
        # a change of that setting a shard may hold more than its new part, so the parts alone
        # would not keep the sum within the quota.
        used = {k: sum(_usage(snap).get(k, 0) for snap in snaps.values()) for k in KINDS}
        if any(used[k] + need[k] > total for k, total in (("uploads", lim["uploads_per_day"]),
                                                           ("bytes", lim["bytes_per_day"]))):
            raise _over(used, size, lim)
        takes, _ = plan([(start + k) % n for k in range(n)], functools.partial(_usage_of, snaps), shares, need)
        if takes is None:
            raise _over(used, size, lim)
        if _write_takes(db, counter_id, snaps, takes, {"client_id": client.client_id, "day": day}):
            return Reservation(counter_id, takes)
        time.sleep(random.uniform(0, CAS_BACKOFF_SECONDS))  # another upload of this client took a shard first
    raise TransientError(f"the quota of client {client.client_id} is contended; retry")


def _usage(snap) -> dict:
    return (snap.to_dict() or {}) if snap is not None and snap.exists else {}


def _usage_of(snaps: dict, i: int) -> dict:
    return _usage(snaps.get(i))


@retried("firestore")
def _read_shards(db: firestore.Client, counter_id: str) -> dict:
    """Every shard of the counter in one query (no locks: the writes below are conditional)."""
    shards = db.collection(USAGE).document(counter_id).collection("shards")
    return {int(snap.id): snap for snap in shards.stream()}


@retried("firestore")
def _write_takes(db: firestore.Client, counter_id: str, snaps: dict, takes: dict, fields: dict) -> bool:
    """Write what `takes` adds to each shard, all or nothing, only if none of those shards changed
    since it was read (compare-and-set on update_time, as the job store does). False: one did."""
    batch = db.batch()
    for i, take in takes.items():
        snap = snaps.get(i)
        used = _usage(snap)
        values = {k: used.get(k, 0) + take.get(k, 0) for k in KINDS}
        if snap is None or not snap.exists:
            batch.create(_shard(db, counter_id, i), values)
            # the counter's own fields, for stats(): written once per new shard and day
            batch.set(db.collection(USAGE).document(counter_id), fields, merge=True)
        else:
            batch.update(_shard(db, counter_id, i), values, option=db.write_option(last_update_time=snap.update_time))
    try:
        batch.commit()
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Conflict):
        return False
    return True


def _over(used: dict, size: int, lim: dict) -> HTTPProblem:
    if used.get("uploads", 0) + 1 > lim["uploads_per_day"]:
        over = f"{used.get('uploads', 0)} uploads today reach the quota of {lim['uploads_per_day']} (QUOTA_UPLOADS_PER_DAY)"
    else:
        over = (f"{used.get('bytes', 0)} + {size} bytes today exceed the quota of {lim['bytes_per_day']} "
                "(QUOTA_BYTES_PER_DAY)")
    now = utcnow()
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return HTTPProblem(429, "Quota exceeded", f"{over}; nothing was stored",
                       headers={"Retry-After": str(max(1, int((tomorrow - now).total_seconds())))})


def give_back(reservation: Reservation, amounts: dict[str, int]) -> dict[int, dict[str, int]]:
    """Which shards give back `amounts` ({kind: n}, at most what was taken): the shards it took from."""
    left = dict(amounts)
    back: dict[int, dict[str, int]] = {}
    for i, take in reservation.takes.items():
        for k, n in take.items():
            m = min(n, left.get(k, 0))
            if m:
                back.setdefault(i, {})[k] = m
                left[k] -= m
    return back


def write_back(db: firestore.Client, writer, reservation: Reservation, amounts: dict[str, int]) -> None:
    """Add the give-back of `amounts` to `writer` (a batch or a transaction): plain decrements,
    which never break the quota (they only make room)."""
    for i, back in give_back(reservation, amounts).items():
        writer.set(_shard(db, reservation.counter_id, i), {k: firestore.Increment(-n) for k, n in back.items()},
                   merge=True)


@retried("firestore")
def release(rt: Runtime, reservation: Reservation) -> None:
    """The upload did not happen: its whole reservation is free again."""
    db = firestore_of(rt.jobs)
    batch = db.batch()
    write_back(db, batch, reservation, {k: reservation.total(k) for k in KINDS})
    batch.commit()


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
                         "bytes": used.get("bytes", 0), **_outcomes(rt, client_id, day),
                         "cost_usd": _cost(rt, client_id, day)})
    return rows


@retried("firestore")
def _cost(rt: Runtime, client_id: str, day: str) -> float:
    """The estimated cost (docs/cost.md) of the jobs created that day that have ended: a sum()
    aggregation over `cost.total_usd` (index jobs_owner_created_at_cost, terraform/firestore.tf),
    one read per 1000 jobs; a job still running has no stored cost yet."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    query = (firestore_of(rt.jobs).collection(JobStore.collection)
             .where(filter=FieldFilter("owner", "==", client_id))
             .where(filter=FieldFilter("created_at", ">=", start))
             .where(filter=FieldFilter("created_at", "<", start + dt.timedelta(days=1))))
    total = query.sum("cost.total_usd").get()[0][0].value
    return round(float(total or 0), 10)
