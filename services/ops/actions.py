"""Every operator action, once: the console's pages and API and the CLI call these, and each
one that changes something writes its audit entry (who, when, what, what came of it).

`operator` is the verified identity: the console's is the email of the IAP token it checked;
the CLI's is the account whose credentials reach Firestore and Pub/Sub (see `cli_operator`)."""
from __future__ import annotations

import dataclasses
import getpass
import os
from typing import Any, Protocol

from ..pipeline.runtime import Runtime
from . import jobs, sweep
from .dlq import DeadLetters, Filters, Report


class Audit(Protocol):
    def record(self, operator: str, action: str, target: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]: ...


def cli_operator() -> str:
    """Who runs the CLI: MEDIARELAY_OPERATOR (set it to your Google account), else the login name."""
    return os.environ.get("MEDIARELAY_OPERATOR") or f"{getpass.getuser()} (cli)"


def _target(filters: Filters) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(filters).items() if v is not None}
    if "older_than" in out:
        out["older_than"] = f"{filters.older_than.total_seconds():g}s" if filters.older_than else None
    return out


def _outcome(report: Report) -> dict[str, Any]:
    return {"matched": len(report.matched), "done": len(report.done), "refused": len(report.refused),
            "messages": [{k: r.get(k) for k in ("message_id", "job_id", "stage", "note")} for r in report.done + report.refused]}


def replay(rt: Runtime, audit: Audit, operator: str, filters: Filters, *, dry_run: bool = False, limit: int | None = None,
           rate: float | None = None, max_replays: int | None = None, dead_letters: DeadLetters | None = None) -> Report:
    dlq = dead_letters or DeadLetters(rt)
    report = dlq.replay(filters, dry_run=dry_run, limit=limit, rate=rate,
                        max_replays=rt.settings.max_replays if max_replays is None else max_replays)
    if not dry_run:  # a dry run changes nothing: nothing to answer for
        audit.record(operator, "dlq.replay", _target(filters), _outcome(report))
    return report


def purge(rt: Runtime, audit: Audit, operator: str, filters: Filters, dead_letters: DeadLetters | None = None) -> Report:
    report = (dead_letters or DeadLetters(rt)).purge(filters)
    audit.record(operator, "dlq.purge", _target(filters), _outcome(report))
    return report


def redrive(rt: Runtime, audit: Audit, operator: str, job_id: str) -> dict[str, Any]:
    row = sweep.redrive_one(rt, job_id) or {"job_id": job_id, "action": "none", "note": "the job has ended or does not exist"}
    audit.record(operator, "job.redrive", {"job_id": job_id}, row)
    return row


def cancel(rt: Runtime, audit: Audit, operator: str, job_id: str, reason: str | None = None) -> dict[str, Any]:
    row = jobs.cancel(rt, job_id, reason)  # NoSuchJob: nothing happened, nothing to record
    audit.record(operator, "job.cancel", {"job_id": job_id, "reason": reason}, row)
    return row
