"""A job's estimated cost: its recorded usage (services/pipeline/usage.py) at the COST_* prices.

One implementation for the job view, the public event, `mediarelay stats` and the console
(docs/cost.md has the shape, the model and a worked example). The model, in short:
- compute is billed as Cloud Run's request-based price list bills it (vCPU-seconds, GiB-seconds,
  requests), on what the job itself used: the media children's CPU time (ru_utime + ru_stime)
  and the request threads' CPU, memory as each child's peak RSS x its wall time. That is the
  job's share of instances kept busy; an instance serving one job alone bills its whole size
  for the request's wall time, which the usage records too (`wall_seconds`);
- storage is one month of what the job keeps: the original and every object written outside
  work/ (work objects are deleted after the fan-in); plus one Class A operation per write;
- Pub/Sub: every publish and push delivery, at least 1000 bytes each; Firestore: our own calls.
Ingest is not metered: its part is modelled from the job (ingest_usage), without CPU.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..common.config import Settings
from .usage import Usage, total

GIB = 2**30
TIB = 2**40
PARTS = ("cpu", "memory", "requests", "storage_month", "storage_writes", "pubsub", "firestore")
ROUND = 10  # decimal places of USD kept: a part of a small image job is ~1e-7


@dataclass(frozen=True)
class Prices:
    vcpu_second: float
    gib_second: float
    request: float
    storage_gb_month: float
    storage_write: float
    pubsub_tib: float
    firestore_reads_100k: float
    firestore_writes_100k: float
    firestore_deletes_100k: float
    price_list: str

    @classmethod
    def of(cls, s: Settings) -> Prices:
        return cls(s.cost_vcpu_second_usd, s.cost_gib_second_usd, s.cost_request_usd, s.cost_storage_gb_month_usd,
                   s.cost_storage_write_usd, s.cost_pubsub_tib_usd, s.cost_firestore_reads_100k_usd,
                   s.cost_firestore_writes_100k_usd, s.cost_firestore_deletes_100k_usd, s.cost_price_list)


# An upload's Firestore calls (services/ingest/uploads.py): the idempotency record created, the job
# read and created, the day's quota shards read (at most QUOTA_COUNTER_SHARDS, 10 by default), the
# quota counter and one shard written.
INGEST_FIRESTORE_READS, INGEST_FIRESTORE_WRITES = 1 + 10, 4


def ingest_usage(job: Mapping[str, Any]) -> Usage:
    """The upload's part, modelled (ingest is not metered): one request, the original written and
    kept, the media-ingested message, its Firestore calls."""
    size = int((job.get("source") or {}).get("size") or 0)
    return Usage(requests=1, bytes_written=size, objects_written=1, messages=1, message_bytes=1000,
                 firestore_reads=INGEST_FIRESTORE_READS, firestore_writes=INGEST_FIRESTORE_WRITES)


def parts(u: Usage, p: Prices) -> dict[str, float]:
    """USD per part of one usage record."""
    kept = u.bytes_written - u.work_bytes_written
    return {
        "cpu": u.cpu_seconds * p.vcpu_second,
        "memory": u.memory_gib_seconds * p.gib_second,
        "requests": u.requests * p.request,
        "storage_month": kept / GIB * p.storage_gb_month,
        "storage_writes": u.objects_written * p.storage_write,
        "pubsub": u.message_bytes / TIB * p.pubsub_tib,
        "firestore": (u.firestore_reads * p.firestore_reads_100k + u.firestore_writes * p.firestore_writes_100k
                      + u.firestore_deletes * p.firestore_deletes_100k) / 100_000,
    }


def stage_usages(job: Mapping[str, Any]) -> dict[str, Usage]:
    """Each stage's recorded usage (a stage that has not handed on yet has none), ingest modelled."""
    out = {"ingest": ingest_usage(job)}
    for stage, record in (job.get("stages") or {}).items():
        if record.get("usage"):
            out[stage] = Usage.of(record["usage"])
    return out


def estimate(job: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    """The `cost` of the job view and the event (schemas/media-events.v3.json `cost`)."""
    by_stage = stage_usages(job)
    stage_parts = {stage: parts(u, prices) for stage, u in by_stage.items()}
    part_sums = {name: round(sum(sp[name] for sp in stage_parts.values()), ROUND) for name in PARTS}
    usd = round(sum(part_sums.values()), ROUND)
    used = total(u.as_dict() for u in by_stage.values())
    out: dict[str, Any] = {
        "estimated": True,
        "currency": "USD",
        "total_usd": usd,
        "parts": part_sums,
        "stages": {stage: round(sum(sp.values()), ROUND) for stage, sp in stage_parts.items()},
        "usage": {**used.as_dict(), "stored_bytes": used.bytes_written - used.work_bytes_written},
        "prices": {k: v for k, v in asdict(prices).items()},
    }
    minutes = video_minutes(job)
    if minutes:
        out["per_video_minute_usd"] = round(usd / minutes, ROUND)
    return out


def video_minutes(job: Mapping[str, Any]) -> float:
    if job.get("kind") != "video":
        return 0.0
    duration = ((job.get("analysis") or {}).get("duration_s")) or ((job.get("video") or {}).get("duration_s")) or 0
    return float(duration) / 60.0
