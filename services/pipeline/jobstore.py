"""Job documents `jobs/{job_id}`: the job state machine (jobstate.py) applied with
compare-and-set. JobStoreBase holds every operation; a backend supplies read / write-if-
unchanged / plain write / create / the stuck-job query, and the finished-segment records of a
fan-out (create-if-absent, list, count, delete: one document each under the job, never a shared
one). JobStore is Firestore; tests use an in-memory backend with the same semantics
(tests/support/fakes.py).
"""
from __future__ import annotations

import datetime as dt
import functools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ..common.errors import TransientError
from . import jobstate, usage
from .docstore import FirestoreCollection
from .jobstate import FanIn, FanInClaim, FannedOut, FinalStatus, HandOff, Job, SegmentRecord, StageStart, Updates
from .payloads import Handoff
from .retrying import retried

CAS_ATTEMPTS = 20
T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Conflict(Exception):
    """The document changed since it was read: read again and decide anew."""


# The Firestore operations each backend call is billed as (a job's cost counts them, services/pipeline/usage.py):
# name -> (kind, how many, from the call's result). An aggregation (count) is one read per 1000 entries: one here.
_BILLED: dict[str, tuple[str, Callable[[Any], int]]] = {
    "_read": ("reads", lambda _: 1), "_read_segment": ("reads", lambda _: 1), "_count_segments": ("reads", lambda _: 1),
    "_segment_records": ("reads", lambda found: max(1, len(found))),
    "_write_if": ("writes", lambda _: 1), "_write": ("writes", lambda _: 1), "_create": ("writes", lambda _: 1),
    "_create_segment": ("writes", lambda _: 1), "_replace_segment_if": ("writes", lambda _: 1),
    "_delete_segments": ("deletes", lambda deleted: int(deleted)),
}


def _billed(call: Callable[..., Any], kind: str, count: Callable[[Any], int]) -> Callable[..., Any]:
    @functools.wraps(call)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except Conflict:  # a failed precondition is still a billed write
            usage.firestore(**{kind: 1})
            raise
        usage.firestore(**{kind: count(result)})
        return result

    return counted


class JobStoreBase:
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every backend's calls are counted the same way (Firestore's and the tests' in-memory one)."""
        super().__init_subclass__(**kwargs)
        for name, (kind, count) in _BILLED.items():
            if name in cls.__dict__:
                setattr(cls, name, _billed(cls.__dict__[name], kind, count))

    def __init__(self, ttl_days: int = 30, segment_ttl_days: float = 2) -> None:
        self.ttl = dt.timedelta(days=ttl_days)
        self.segment_ttl = dt.timedelta(days=segment_ttl_days)

    # --- the backend -------------------------------------------------------------------
    def _read(self, job_id: str) -> tuple[Job | None, object]:
        """(document or None, version token for _write_if)."""
        raise NotImplementedError

    def _write_if(self, job_id: str, updates: Updates, version: object) -> None:
        """Apply dotted-path `updates` if the document is still at `version`, else Conflict."""
        raise NotImplementedError

    def _write(self, job_id: str, updates: Updates) -> None:
        raise NotImplementedError

    def _create(self, job_id: str, doc: Job) -> bool:
        """Create if absent; False when it exists."""
        raise NotImplementedError

    def find_stuck(self, statuses: Iterable[str], cutoff: dt.datetime, limit: int = 500) -> list[Job]:
        """Jobs in `statuses` with no progress since `cutoff`, oldest first."""
        raise NotImplementedError

    def _create_segment(self, job_id: str, record_id: str, doc: SegmentRecord | FanInClaim) -> bool:
        """Create the segment record if absent; False when it exists."""
        raise NotImplementedError

    def _segment_records(self, job_id: str, stage: str) -> list[SegmentRecord]:
        raise NotImplementedError

    def _count_segments(self, job_id: str, stage: str) -> int:
        raise NotImplementedError

    def _delete_segments(self, job_id: str, stage: str) -> int:
        """The stage's finished records and its fan-in claim."""
        raise NotImplementedError

    def _read_segment(self, job_id: str, record_id: str) -> tuple[FanInClaim | None, object]:
        """The fan-in claim record (the one record read back) and its version token."""
        raise NotImplementedError

    def _replace_segment_if(self, job_id: str, record_id: str, doc: FanInClaim, version: object) -> None:
        """Replace the record if still at `version`, else Conflict."""
        raise NotImplementedError

    # --- operations ----------------------------------------------------------------------
    def _decide(self, job_id: str, decision: Callable[[Job | None], tuple[T, Updates | None]]) -> T:
        """Read, decide, write only if unchanged (else again). Optimistic rather than a
        read-write transaction: two deliveries of one message racing on one job would hold
        each other's locks (the emulator makes the loser wait seconds); here the loser
        re-reads and sees the winner's write."""
        for _ in range(CAS_ATTEMPTS):
            job, version = self._read(job_id)
            result, updates = decision(job)
            if not updates:
                return result
            try:
                self._write_if(job_id, updates, version)
                return result
            except Conflict:
                time.sleep(random.uniform(0.0, 0.05))
        raise TransientError(f"job {job_id}: still contended after {CAS_ATTEMPTS} compare-and-set attempts")

    @retried("firestore")
    def get(self, job_id: str) -> Job | None:
        return self._read(job_id)[0]

    @retried("firestore")
    def create(self, job_id: str, fields: dict[str, Any]) -> tuple[Job, bool]:
        """Create the job if absent; return (document, created)."""
        doc = jobstate.new_job(job_id, fields, utcnow(), self.ttl)
        if self._create(job_id, doc):
            return doc, True
        return self._read(job_id)[0] or doc, False

    @retried("firestore")
    def begin_stage(self, job_id: str, stage: str, *, beside: bool = False) -> StageStart:
        return self._decide(job_id, lambda job: jobstate.begin_stage(job, stage, utcnow(), beside=beside))

    @retried("firestore")
    def hand_off(self, job_id: str, stage: str, fields: Updates, handoff: Handoff | None) -> HandOff:
        return self._decide(job_id, lambda job: jobstate.hand_off(job, stage, fields, handoff, utcnow()))

    @retried("firestore")
    def fan_out(self, job_id: str, stage: str, count: int, plan: dict[str, Any],
                used: dict[str, Any] | None = None) -> list[int] | None:
        """Record the fan-out (and what its delivery `used`, for the cost); the indices already
        finished (a redelivered input keeps them), or None when the stage is no longer running."""

        def decide(job: Job | None) -> tuple[FannedOut | None, Updates | None]:
            outcome, updates = jobstate.fan_out(job, stage, count, plan, utcnow())
            if updates is not None and used is not None:
                updates = {**updates, f"stages.{stage}.fan_out_usage": used}
            return outcome, updates

        outcome = self._decide(job_id, decide)
        if outcome is None:
            return None
        if outcome is FannedOut.NEW:  # records of an earlier plan (another count) must not count towards this one
            self._delete_segments(job_id, stage)
            return []
        return sorted(self.segments_done(job_id, stage))

    @retried("firestore")
    def begin_segment(self, job_id: str, stage: str, index: int, count: int) -> jobstate.SegmentStart:
        return self._decide(job_id, lambda job: jobstate.begin_segment(job, stage, index, count, utcnow()))

    @retried("firestore")
    def record_segment(self, job_id: str, stage: str, index: int, used: dict[str, Any] | None = None) -> bool:
        """The segment's result is stored: its record (with what it `used`), create-if-absent (False: a redelivery)."""
        doc = jobstate.segment_record(stage, index, utcnow(), self.segment_ttl, used)
        return self._create_segment(job_id, jobstate.segment_record_id(stage, index), doc)

    @retried("firestore")
    def segments_done(self, job_id: str, stage: str) -> dict[int, dt.datetime]:
        """Finished segments of the stage's fan-out: index -> when (the sweep's progress signal)."""
        return {int(r["index"]): r["done_at"] for r in self._segment_records(job_id, stage)}

    @retried("firestore")
    def segment_records(self, job_id: str, stage: str) -> list[SegmentRecord]:
        """The stage's finished segments (index, done_at, usage), read once, by the fan-in."""
        return self._segment_records(job_id, stage)

    @retried("firestore")
    def claim_fan_in(self, job_id: str, stage: str, claimant: str, count: int) -> FanIn:
        """COMPLETE when this delivery fans in: every record is in (counted by an aggregation,
        after the caller's own record was created, so the delivery whose record came last is sure
        to see them all) and the claim record is this claimant's (create-if-absent: of the few
        that see the set whole, one create succeeds). CLAIMED (another delivery fans in),
        PENDING, STALE (jobstate.ready_to_fan_in) otherwise. The job document is only read."""
        finished = self._count_segments(job_id, stage)
        if finished < count:
            return FanIn.PENDING
        ready = jobstate.ready_to_fan_in(self._read(job_id)[0], stage, finished)
        if ready is not FanIn.READY:
            return ready
        record_id = jobstate.fan_in_claim_id(stage)
        for _ in range(CAS_ATTEMPTS):
            now = utcnow()
            if self._create_segment(job_id, record_id, jobstate.fan_in_claim(stage, claimant, now, self.segment_ttl)):
                return FanIn.COMPLETE
            claim, version = self._read_segment(job_id, record_id)
            if claim is None:
                continue  # deleted meanwhile (a taken-over claim being replaced): create again
            if not jobstate.may_take_claim(claim, claimant, now):
                return FanIn.CLAIMED
            try:
                self._replace_segment_if(job_id, record_id, jobstate.fan_in_claim(stage, claimant, now, self.segment_ttl),
                                         version)
                return FanIn.COMPLETE
            except Conflict:
                continue
        raise TransientError(f"job {job_id}: the {stage} fan-in claim still contended after {CAS_ATTEMPTS} attempts")

    @retried("firestore")
    @retried("firestore")
    def release_fan_in(self, job_id: str, stage: str, claimant: str) -> None:
        """Give back a fan-in claim whose fan-in failed in this process: it is marked as old as
        its lease (compare-and-set), so the next delivery that sees the set whole takes it."""
        record_id = jobstate.fan_in_claim_id(stage)
        claim, version = self._read_segment(job_id, record_id)
        if claim is None or claim.get("by") != claimant:
            return
        try:
            self._replace_segment_if(job_id, record_id, {**claim, "at": claim["at"] - jobstate.FAN_IN_LEASE}, version)
        except Conflict:
            pass  # taken over meanwhile: it is no longer ours to give back

    def delete_segments(self, job_id: str, stage: str) -> int:
        return self._delete_segments(job_id, stage)

    @retried("firestore")
    def finish_stage(self, job_id: str, stage: str) -> None:
        self._write(job_id, jobstate.finished(stage, utcnow()))

    @retried("firestore")
    def record_transient_error(self, job_id: str, stage: str, reason: str) -> None:
        self._write(job_id, jobstate.transient_error(stage, reason, utcnow()))

    @retried("firestore")
    def record(self, job_id: str, fields: Updates) -> None:
        """Facts about the job that decide nothing (a stage that stopped, webhook attempts): a
        plain write of their own fields, also on a final job."""
        self._write(job_id, fields)

    @retried("firestore")
    def mark_dead_lettered(self, job_id: str, stage: str, reason: str) -> bool:
        return self._decide(job_id, lambda job: jobstate.park(job, stage, reason, utcnow()))

    @retried("firestore")
    def claim_final(self, job_id: str, outcome: FinalStatus, fields: Updates) -> Job | None:
        """See jobstate.claim_final; a fresh claim by another delivery is a transient error."""
        try:
            return self._decide(job_id, lambda job: jobstate.claim_final(job, outcome, fields, utcnow()))
        except jobstate.EventBeingPublished as exc:
            raise TransientError(str(exc)) from None

    @retried("firestore")
    def claim_playable(self, job_id: str) -> tuple[jobstate.PlayableClaim, Job | None]:
        """See jobstate.claim_playable; the job as claimed (to build the event from) when CLAIMED."""
        def decide(job: Job | None) -> tuple[tuple[jobstate.PlayableClaim, Job | None], Updates | None]:
            claim, updates = jobstate.claim_playable(job, utcnow())
            return (claim, jobstate.apply(job, updates) if job is not None and updates else None), updates

        return self._decide(job_id, decide)

    @retried("firestore")
    def mark_playable_published(self, job_id: str, message_id: str) -> None:
        self._write(job_id, jobstate.playable_published(message_id, utcnow()))

    @retried("firestore")
    def mark_final_published(self, job_id: str, message_id: str, fields: Updates | None = None) -> None:
        """The event is out; `fields`: what it carried that the job keeps beside it (its cost)."""
        self._write(job_id, {**jobstate.final_published(message_id, utcnow()), **(fields or {})})

    @retried("firestore")
    def record_crash(self, job_id: str, stage: str, reason: str) -> int:
        """Count one crash of the stage's media child on this job; return how many so far."""
        return self._decide(job_id, lambda job: jobstate.count_crash(job, stage, reason, utcnow()))

    @retried("firestore")
    def redrive(self, job_id: str, max_redrives: int) -> jobstate.Redrive | None:
        return self._decide(job_id, lambda job: jobstate.redrive(job, max_redrives, utcnow()))


class JobStore(JobStoreBase, FirestoreCollection):
    """Firestore: compare-and-set on the document's update_time."""

    collection = "jobs"

    def __init__(self, project: str, ttl_days: int = 30, segment_ttl_days: float = 2) -> None:
        JobStoreBase.__init__(self, ttl_days, segment_ttl_days)
        FirestoreCollection.__init__(self, project)

    def _read(self, job_id: str) -> tuple[Job | None, object]:
        snap = self._ref(job_id).get()
        return (cast(Job, snap.to_dict()) if snap.exists else None), snap.update_time

    def _write_if(self, job_id: str, updates: Updates, version: object) -> None:
        try:
            self._ref(job_id).update(_firestore(updates), option=self.client.write_option(last_update_time=version))
        except gexc.FailedPrecondition:
            raise Conflict() from None

    def _write(self, job_id: str, updates: Updates) -> None:
        self._ref(job_id).update(_firestore(updates))

    def _create(self, job_id: str, doc: Job) -> bool:
        try:
            self._ref(job_id).create(doc)
            return True
        except gexc.AlreadyExists:
            return False

    def _segments(self, job_id: str) -> firestore.CollectionReference:
        return self._ref(job_id).collection("segments")

    def _of_stage(self, job_id: str, stage: str) -> firestore.Query:
        from google.cloud.firestore_v1.base_query import FieldFilter

        return self._segments(job_id).where(filter=FieldFilter("stage", "==", stage))

    def _create_segment(self, job_id: str, record_id: str, doc: SegmentRecord | FanInClaim) -> bool:
        try:
            self._segments(job_id).document(record_id).create(doc)
            return True
        except gexc.AlreadyExists:
            return False

    def _segment_records(self, job_id: str, stage: str) -> list[SegmentRecord]:
        query = self._of_stage(job_id, stage).select(["index", "done_at", "usage"])
        return [cast(SegmentRecord, snap.to_dict()) for snap in query.stream()]

    def _count_segments(self, job_id: str, stage: str) -> int:
        [[result]] = self._of_stage(job_id, stage).count().get()
        return int(result.value)

    def _read_segment(self, job_id: str, record_id: str) -> tuple[FanInClaim | None, object]:
        snap = self._segments(job_id).document(record_id).get()
        return (cast(FanInClaim, snap.to_dict()) if snap.exists else None), snap.update_time

    def _replace_segment_if(self, job_id: str, record_id: str, doc: FanInClaim, version: object) -> None:
        try:
            self._segments(job_id).document(record_id).update(doc, option=self.client.write_option(last_update_time=version))
        except gexc.FailedPrecondition:
            raise Conflict() from None

    def _delete_segments(self, job_id: str, stage: str) -> int:
        refs = [snap.reference for snap in self._of_stage(job_id, stage).select([]).stream()]
        refs.append(self._segments(job_id).document(jobstate.fan_in_claim_id(stage)))  # deleting a missing one is no error
        for start in range(0, len(refs), 400):  # a batch takes at most 500 writes
            batch = self.client.batch()
            for ref in refs[start:start + 400]:
                batch.delete(ref)
            batch.commit()
        return len(refs)

    @retried("firestore")
    def find_stuck(self, statuses: Iterable[str], cutoff: dt.datetime, limit: int = 500) -> list[Job]:
        """One equality + one range filter per status: served by the composite index
        (status ASC, updated_at ASC), never a collection scan."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        found: list[Job] = []
        for status in statuses:
            query = (self.client.collection(self.collection)
                     .where(filter=FieldFilter("status", "==", status))
                     .where(filter=FieldFilter("updated_at", "<", cutoff))
                     .order_by("updated_at").limit(limit - len(found)))
            found.extend(cast(Job, snap.to_dict()) for snap in query.stream())
            if len(found) >= limit:
                break
        return found


def firestore_of(jobs: JobStoreBase) -> firestore.Client:
    """The Firestore client behind the job store, for queries that are Firestore's own (listing
    a client's jobs, counters): those paths run against Firestore (or its emulator) only."""
    if not isinstance(jobs, JobStore):
        raise TypeError("this operation needs the Firestore job store")
    return jobs.client


def _firestore(updates: Updates) -> Updates:
    return {k: (firestore.DELETE_FIELD if v is jobstate.DELETE else v) for k, v in updates.items()}


def to_json(job: Mapping[str, Any]) -> dict[str, Any]:
    """Firestore types (timestamps) to JSON-friendly values, for the status API and events."""

    def conv(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return {k: conv(v) for k, v in job.items()}
