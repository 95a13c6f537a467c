"""Media work for a job: admission on this instance, the bounded child, crashes counted on the job.

The child mechanism itself is pure media code (services/media/sandbox.py); what ties it to a
job (its stage's ack deadline from the topology, the job store's crash count) lives here.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ..common.errors import CorruptMedia
from ..media.admission import Admission
from ..media.sandbox import ChildCrashed, ChildLimits, Running, run
from .handon import SEGMENTS_PATH
from .jobstore import JobStoreBase
from .runtime import Runtime

logger = logging.getLogger("mediarelay.media_work")
T = TypeVar("T")


def run_for_job(jobs: JobStoreBase, job_id: str, stage: str, work: Callable[[bytes], T], raw: bytes = b"", *,
                crash_attempts: int, limits: ChildLimits, on_start: Callable[[Running], None] | None = None) -> T:
    """`run`, with crashes counted on the job (JobStore.record_crash): the same input crashing
    the decoder `crash_attempts` times is `corrupt-media`; before that, a retry (503)."""
    try:
        result: T = run(work, raw, limits=limits, on_start=on_start)  # what work returned in the child
        return result
    except ChildCrashed as exc:
        crashes = jobs.record_crash(job_id, stage, exc.reason)
        logger.warning("%s: media child crashed (%s), %d of %d", stage, exc.signal_name, crashes, crash_attempts)
        if crashes >= crash_attempts:
            raise CorruptMedia(f"{exc.reason} on this file {crashes} times (MEDIA_CRASH_ATTEMPTS={crash_attempts})",
                               code="decoder-crash") from None
        raise


_admission: dict[int, Admission] = {}


def stage_limits(rt: Runtime, stage: str) -> ChildLimits:
    """ChildLimits of a job of `stage` starting now (call when the push arrives, before the download)."""
    ack = rt.topology.subscription_for_service(stage).ack_deadline_seconds
    return ChildLimits.for_stage(rt.settings, ack, stage)


def segment_limits(rt: Runtime, stage: str) -> ChildLimits:
    """ChildLimits of one segment of `stage` starting now: from the segment subscription's ack deadline."""
    ack = rt.topology.subscription_for_service(stage, SEGMENTS_PATH).ack_deadline_seconds
    return ChildLimits.for_stage(rt.settings, ack, f"one {stage} segment")


def media_work(rt: Runtime, stage: str, job_id: str, work: Callable[[bytes], T], *, limits: ChildLimits,
               need_bytes: int = 0, raw: bytes = b"") -> T:
    """What a stage calls: admission for `need_bytes` on this instance, then work(raw) in a
    bounded child, crashes counted on the job. `work` is a module-level function of the raw
    bytes, its other arguments bound by keyword (functools.partial): it is pickled to the child."""
    s = rt.settings
    admission = _admission.get(s.instance_memory_bytes)
    if admission is None:  # one per process (the instance's memory is read once)
        admission = _admission[s.instance_memory_bytes] = Admission(s.instance_memory_bytes)
    with admission.admit(need_bytes, f"this {stage} job") as hand_over:
        return run_for_job(rt.jobs, job_id, stage, work, raw, crash_attempts=s.media_crash_attempts, limits=limits,
                           on_start=hand_over)
