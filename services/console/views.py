"""What the pages show, made from documents and messages as pure functions (tested without a cloud)."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..ops.dlq import DeadLetter
from ..pipeline.jobstate import STAGES, Job
from ..pipeline.topology import Topology
from .charts import Span

HOURS = 24


def ago(then: dt.datetime | None, now: dt.datetime) -> str:
    if then is None:
        return "-"
    s = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def seconds(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def job_row(job: Job) -> dict[str, Any]:
    err: dict[str, Any] = dict(job.get("error") or {})
    return {"job_id": job["job_id"], "status": job["status"], "kind": job.get("kind") or "", "owner": job.get("owner") or "",
            "created_at": job["created_at"], "took": seconds(job["created_at"], job.get("finished_at")),
            "error_class": err.get("error_class", ""), "reason": err.get("reason", "")}


def waterfall_spans(job: Job, segments: Sequence[dict[str, Any]]) -> tuple[list[Span], float]:
    """Per stage: queued from the previous stage's end (the job's creation for the first), worked from
    started_at to finished_at; a fan-out's finished segments under their stage, each ending at its record."""
    t0 = job["created_at"]
    end_of_job = job.get("finished_at") or job.get("updated_at") or t0
    spans: list[Span] = []
    queued_at: dt.datetime | None = t0
    for stage in STAGES:
        rec: dict[str, Any] = dict(job.get("stages", {}).get(stage) or {})
        started, finished = rec.get("started_at"), rec.get("finished_at")
        state = rec.get("state", "pending")
        spans.append(Span(stage, seconds(t0, queued_at), seconds(t0, started), seconds(t0, finished), state))
        # While the fan-out runs, its records; after the fan-in (which deletes them), what the job kept of them.
        done = [s for s in segments if s.get("stage") == stage and "index" in s] or (rec.get("segments") or {}).get("done", [])
        for seg in sorted(done, key=lambda s: s["index"]):
            end = seconds(t0, seg.get("done_at"))
            begin = end - seg["seconds"] if end is not None and seg.get("seconds") else seconds(t0, started)
            spans.append(Span(f"segment {seg['index']}", None, begin, end, "done", indent=True))
        queued_at = finished or rec.get("last_attempt_at") or queued_at
    return spans, max(seconds(t0, end_of_job) or 0.0, *(s.end or 0.0 for s in spans), 0.001)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def health(finished: Iterable[Job], now: dt.datetime) -> dict[str, Any]:
    """Per hour of the last day: completed and failed, upload -> completed p50/p95; failures by class."""
    start = (now - dt.timedelta(hours=HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    labels = [(start + dt.timedelta(hours=i)).strftime("%H:00") for i in range(HOURS)]
    completed, failed = [0] * HOURS, [0] * HOURS
    latencies: list[list[float]] = [[] for _ in range(HOURS)]
    classes: Counter[str] = Counter()
    for job in finished:
        at = job.get("finished_at")
        if at is None or at < start:
            continue
        i = min(HOURS - 1, int((at - start).total_seconds() // 3600))
        if job["status"] == "completed":
            completed[i] += 1
            latencies[i].append((at - job["created_at"]).total_seconds())
        elif job["status"] == "failed":
            failed[i] += 1
            error: dict[str, Any] = dict(job.get("error") or {})
            classes[error.get("error_class", "unknown")] += 1
    every = [v for hour in latencies for v in hour]
    return {"labels": labels, "completed": completed, "failed": failed,
            "p50": [percentile(h, 50) for h in latencies], "p95": [percentile(h, 95) for h in latencies],
            "day_p50": percentile(every, 50), "day_p95": percentile(every, 95),
            "failures": classes.most_common(), "total_completed": sum(completed), "total_failed": sum(failed)}


def decoded(data: bytes) -> str:
    """A message's payload as a person reads it: pretty JSON, else text."""
    try:
        return json.dumps(json.loads(data), indent=2, sort_keys=True)
    except ValueError:
        return data.decode(errors="replace")


def dead_letter_overview(topology: Topology, messages: Sequence[DeadLetter], now: dt.datetime) -> list[dict[str, Any]]:
    """Every operators' dead-letter subscription: depth, oldest message's age, its messages."""
    out = []
    for sub in sorted(topology.push_subscriptions.values(), key=lambda s: s.name):
        mine = [m for m in messages if m.subscription == sub.dead_letter_subscription]
        oldest = min((m.publish_time for m in mine), default=None)
        out.append({"subscription": sub.dead_letter_subscription, "source": sub.name, "stage": sub.service,
                    "topic": sub.topic, "depth": len(mine), "oldest": oldest, "oldest_age": ago(oldest, now),
                    "messages": [{**m.summary(), "attributes": m.attributes, "payload": decoded(m.data)} for m in mine]})
    return out
