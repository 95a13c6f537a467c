"""Firestore job documents `jobs/{job_id}`: creation, forward-only transitions, final outcome.

Every transition is an atomic compare-and-set (JobStore._run) and only moves forward
(STATUS_RANK), so a late or duplicated message never moves a job backwards or out of a
final state.
"""
from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import firestore

from .errors import TransientError
from .retrying import retried

STATUS_RANK = {"received": 0, "analyzing": 1, "rendering": 2, "notifying": 3, "completed": 4, "failed": 4}
FINAL = ("completed", "failed")
# Parked after a stage exhausted its delivery attempts: not final (no event yet), so an
# operator's replay can resume the job, and a purge ends it as failed.
DEAD_LETTERED = "dead-lettered"
ACTIVE = ("received", "analyzing", "rendering", "notifying")
STAGES = ("analyze", "render", "notify")
# Status while a stage runs (it stays so until the next stage begins).
RUNNING_STATUS = {"analyze": "analyzing", "render": "rendering", "notify": "notifying"}
CAS_ATTEMPTS = 20
# A delivery that claimed the final event and went silent is presumed dead after this.
FINAL_EVENT_LEASE = dt.timedelta(seconds=60)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def forward(current: str, new: str) -> bool:
    if current == DEAD_LETTERED:
        return new != "received"
    return current not in FINAL and STATUS_RANK[new] > STATUS_RANK[current]


@dataclass
class StageStart:
    job: dict
    proceed: bool
    reason: str = ""


class JobStore:
    collection = "jobs"

    def __init__(self, project: str, ttl_days: int = 30):
        self.project = project
        self.ttl = dt.timedelta(days=ttl_days)
        self._client: firestore.Client | None = None

    @property
    def client(self) -> firestore.Client:
        if self._client is None:
            self._client = firestore.Client(project=self.project)
        return self._client

    def _ref(self, job_id: str):
        return self.client.collection(self.collection).document(job_id)

    @retried("firestore")
    def get(self, job_id: str) -> dict | None:
        snap = self._ref(job_id).get()
        return snap.to_dict() if snap.exists else None

    @retried("firestore")
    def create(self, job_id: str, fields: dict) -> tuple[dict, bool]:
        """Create the job if absent; return (document, created)."""
        now = utcnow()
        doc = {
            "job_id": job_id,
            "status": "received",
            "created_at": now,
            "updated_at": now,
            "expires_at": now + self.ttl,
            "stages": {s: {"state": "pending", "attempts": 0} for s in STAGES},
            **fields,
        }
        try:
            self._ref(job_id).create(doc)
            return doc, True
        except gexc.AlreadyExists:
            return self._ref(job_id).get().to_dict(), False

    def _run(self, fn, job_id: str):
        """Read-decide-write as compare-and-set: `fn(job)` returns (result, updates); the
        updates are written only if the document is unchanged since it was read
        (last_update_time precondition), else it is read again and `fn` decides anew.

        Optimistic rather than a read-write transaction: two deliveries of one message racing
        on one job would hold each other's locks (pessimistic server-side transactions; the
        emulator makes the loser wait seconds). Here the loser just re-reads, and sees the
        winner's write.
        """
        ref = self._ref(job_id)
        for _ in range(CAS_ATTEMPTS):
            snap = ref.get()
            result, updates = fn(snap.to_dict() if snap.exists else None)
            if not updates:
                return result
            try:
                ref.update(updates, option=self.client.write_option(last_update_time=snap.update_time))
                return result
            except gexc.FailedPrecondition:
                time.sleep(random.uniform(0.0, 0.05))
        raise gexc.Aborted(f"job {job_id}: still contended after {CAS_ATTEMPTS} compare-and-set attempts")

    @retried("firestore")
    def begin_stage(self, job_id: str, stage: str) -> StageStart:
        def fn(job):
            if job is None:
                return StageStart({}, False, "unknown job"), None
            if job["status"] in FINAL:
                return StageStart(job, False, f"job already {job['status']}"), None
            record = job["stages"][stage]
            if record["state"] == "done":
                return StageStart(job, False, f"{stage} already done"), None
            now = utcnow()
            updates = {
                f"stages.{stage}.state": "running",
                f"stages.{stage}.attempts": record.get("attempts", 0) + 1,
                f"stages.{stage}.last_attempt_at": now,
                "updated_at": now,
            }
            if not record.get("started_at"):
                updates[f"stages.{stage}.started_at"] = now
            if forward(job["status"], RUNNING_STATUS[stage]):
                updates["status"] = RUNNING_STATUS[stage]
            if job.get("dead_letter"):
                updates["dead_letter"] = firestore.DELETE_FIELD  # resumed by a replay
            return StageStart(_apply(job, updates), True), updates

        return self._run(fn, job_id)

    @retried("firestore")
    def finish_stage(self, job_id: str, stage: str, fields: dict) -> None:
        """Mark `stage` done and store its outputs.

        A plain update, not a transaction: it never touches `status` (the next stage's
        begin_stage moves that forward), and the next stage, already triggered by our
        publish, may be reading the same document; a read-write transaction here would
        contend with it for nothing.
        """
        updates = {
            f"stages.{stage}.state": "done",
            f"stages.{stage}.finished_at": utcnow(),
            f"stages.{stage}.error": firestore.DELETE_FIELD,
            "updated_at": utcnow(),
            **fields,
        }
        self._ref(job_id).update(updates)

    @retried("firestore")
    def mark_dead_lettered(self, job_id: str, stage: str, reason: str) -> bool:
        """The last delivery attempt failed transiently: park the job, visibly, for operators."""

        def fn(job):
            if job is None or job["status"] in FINAL or job["stages"][stage]["state"] == "done":
                return False, None
            now = utcnow()
            return True, {
                "status": DEAD_LETTERED,
                f"stages.{stage}.state": DEAD_LETTERED,
                f"stages.{stage}.error": reason,
                "dead_letter": {"stage": stage, "reason": reason, "at": now},
                "updated_at": now,
            }

        return self._run(fn, job_id)

    @retried("firestore")
    def find_stuck(self, statuses, cutoff, limit: int = 500) -> list[dict]:
        """Jobs in `statuses` with no progress since `cutoff`, oldest first.

        One equality + one range filter per status: served by the composite index
        (status ASC, updated_at ASC), never a collection scan.
        """
        from google.cloud.firestore_v1.base_query import FieldFilter

        found = []
        for status in statuses:
            query = (self.client.collection(self.collection)
                     .where(filter=FieldFilter("status", "==", status))
                     .where(filter=FieldFilter("updated_at", "<", cutoff))
                     .order_by("updated_at").limit(limit - len(found)))
            found.extend(snap.to_dict() for snap in query.stream())
            if len(found) >= limit:
                break
        return found

    @retried("firestore")
    def touch(self, job_id: str) -> None:
        self._ref(job_id).update({"updated_at": utcnow()})

    @retried("firestore")
    def record_transient_error(self, job_id: str, stage: str, reason: str) -> None:
        self._ref(job_id).update({f"stages.{stage}.error": reason, "updated_at": utcnow()})

    @retried("firestore")
    def record_crash(self, job_id: str, stage: str, reason: str) -> int:
        """Count one crash of the stage's media child on this job; return how many so far."""

        def fn(job):
            if job is None:
                return 0, None
            crashes = int(job["stages"][stage].get("crashes", 0)) + 1
            return crashes, {f"stages.{stage}.crashes": crashes, f"stages.{stage}.error": reason, "updated_at": utcnow()}

        return self._run(fn, job_id)

    @retried("firestore")
    def claim_final(self, job_id: str, outcome: str, fields: dict) -> dict | None:
        """Move the job to its final `outcome` and claim the right to publish its one event.

        Returns the job to publish for, or None when the event is already out (or the job
        already ended the other way). Raises TransientError while another delivery holds a
        fresh claim, so Pub/Sub retries this one later instead of publishing twice.
        """

        def fn(job):
            if job is None:
                return None, None
            final = job.get("final_event") or {}
            if final.get("published"):
                return None, None
            if job["status"] in FINAL and job["status"] != outcome:
                outcome_now = job["status"]
            else:
                outcome_now = outcome
            now = utcnow()
            claimed = final.get("claimed_at")
            if claimed and now - claimed < FINAL_EVENT_LEASE and final.get("status") == outcome_now:
                raise TransientError(f"job {job_id}: final event is being published by another delivery")
            updates = {
                "final_event": {"id": f"{job_id}/{outcome_now}", "status": outcome_now, "claimed_at": now, "published": False},
                "updated_at": now,
            }
            if job["status"] not in FINAL:
                updates["status"] = outcome_now
                updates["finished_at"] = now
                updates.update(fields)
            return _apply(job, updates), updates

        return self._run(fn, job_id)

    @retried("firestore")
    def mark_final_published(self, job_id: str, message_id: str) -> None:
        self._ref(job_id).update(
            {"final_event.published": True, "final_event.message_id": message_id, "final_event.published_at": utcnow()}
        )


def _apply(job: dict, updates: dict) -> dict:
    """The document as it reads after `updates` (dotted paths) are applied."""
    out = {**job, "stages": {k: dict(v) for k, v in job.get("stages", {}).items()}}
    for path, value in updates.items():
        if value is firestore.DELETE_FIELD:
            continue
        parts = path.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def to_json(job: dict) -> dict:
    """Firestore types (timestamps) to JSON-friendly values, for the status API and events."""

    def conv(v):
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(job)
