"""Upload grants: what ingest allowed when it handed out a signed URL or a resumable session.

`upload_grants/{job_id}` records the owner, the most bytes the object may have and the quota
reservation taken at the announced size. Finalize trusts this record, not the bucket: the local
GCS stand-in enforces neither a signed size nor a session's size, and a session outlives the
revocation of its client. `settle` ends the reservation once, at the size that arrived (or gives
it all back for a refused upload); the record says it is settled, so a redelivered notification
settles nothing twice.
"""
from __future__ import annotations

import random
import time

from google.api_core import exceptions as gexc

from ..common.errors import TransientError
from ..pipeline.jobstore import firestore_of, utcnow
from ..pipeline.retrying import retried
from ..pipeline.runtime import Runtime
from .quotas import CAS_ATTEMPTS, CAS_BACKOFF_SECONDS, KINDS, Reservation, write_back

GRANTS = "upload_grants"


@retried("firestore")
def record(rt: Runtime, job_id: str, owner: str, max_bytes: int, reservation: Reservation, *,
           on_duplicate: str = "process") -> None:
    """Record a grant. A grant issued again for the same job (the same Idempotency-Key before
    any upload) replaces the earlier one and gives its reservation back: one upload, counted once.
    `on_duplicate` rides here, not in the object's metadata: the grant is ours, the metadata the uploader's."""
    doc = {"job_id": job_id, "owner": owner, "max_bytes": max_bytes, "reservation": reservation.to_doc(),
           "settled": False, "granted_at": utcnow(), "expires_at": utcnow() + rt.jobs.ttl, "on_duplicate": on_duplicate}
    _change(rt, job_id, lambda old: (doc, _unsettled(old)))


@retried("firestore")
def find(rt: Runtime, job_id: str) -> dict | None:
    snap = firestore_of(rt.jobs).collection(GRANTS).document(job_id).get()
    return snap.to_dict() if snap.exists else None


def settle(rt: Runtime, job_id: str, actual_bytes: int | None) -> None:
    """Count the upload at `actual_bytes` (at most what was reserved: a bigger object is refused
    before), or give the whole reservation back (None: the upload was refused). Once per grant."""
    def decide(old: dict | None):
        if old is None or old.get("settled"):
            return None, None
        reservation = Reservation.from_doc(old["reservation"])
        back = ({k: reservation.total(k) for k in KINDS} if actual_bytes is None
                else {"bytes": max(0, reservation.total("bytes") - actual_bytes)})
        return {**old, "settled": True, "actual_bytes": actual_bytes, "settled_at": utcnow()}, (reservation, back)

    _change(rt, job_id, decide)


def _unsettled(old: dict | None):
    """What an earlier grant still holds, to give back: (reservation, amounts) or None."""
    if old is None or old.get("settled"):
        return None
    earlier = Reservation.from_doc(old["reservation"])
    return earlier, {k: earlier.total(k) for k in KINDS}


@retried("firestore")
def _change(rt: Runtime, job_id: str, decide) -> None:
    """Read the grant, `decide(old) -> (new doc or None, (reservation, amounts to give back) or None)`,
    write both in one batch only if the grant did not change meanwhile (compare-and-set, as the
    job store; no read-write transaction), else read and decide again."""
    db = firestore_of(rt.jobs)
    ref = db.collection(GRANTS).document(job_id)
    for _ in range(CAS_ATTEMPTS):
        snap = ref.get()
        doc, back = decide(snap.to_dict() if snap.exists else None)
        if doc is None:
            return
        batch = db.batch()
        if snap.exists:
            batch.update(ref, doc, option=db.write_option(last_update_time=snap.update_time))
        else:
            batch.create(ref, doc)
        if back is not None:
            write_back(db, batch, *back)
        try:
            batch.commit()
            return
        except (gexc.FailedPrecondition, gexc.Conflict):
            time.sleep(random.uniform(0, CAS_BACKOFF_SECONDS))
    raise TransientError(f"upload grant {job_id} is contended; retry")
