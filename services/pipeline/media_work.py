"""Media work for a job: admission on this instance, the bounded child, crashes counted on the job.

The child mechanism itself is pure media code (services/media/sandbox.py); what ties it to a
job (its stage's ack deadline from the topology, the job store's crash count) lives here.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..common.errors import Cancelled, CorruptMedia, TransientError
from ..media.admission import Admission
from ..media.rangefile import RangeSource
from ..media.sandbox import ChildCrashed, ChildLimits, ChildUsage, Running, run
from . import jobstate, usage
from .handon import SEGMENTS_PATH
from .jobstore import JobStoreBase
from .runtime import Runtime

logger = logging.getLogger("mediarelay.media_work")
T = TypeVar("T")


def job_watch(jobs: JobStoreBase, job_id: str, stage: str) -> Callable[[], None]:
    """Raises Cancelled once the job has ended (an operator's `jobs cancel`): the running child is
    then killed at once (services/media/sandbox.py) instead of working on to its deadline."""

    def check() -> None:
        try:
            job = jobs.get(job_id)
        except TransientError:
            return  # the store is unreachable for a moment: the child keeps working, the next poll asks again
        if job is not None and job["status"] in jobstate.FINAL:
            error = job.get("error")
            reason = (error["reason"] if error else "") or f"job {job['status']}"
            raise Cancelled(f"job ended while {stage} was running ({reason}); its media work was stopped")

    return check


@dataclass
class Source:
    """A job's stored original for its media child: `ref` goes where a path would among the
    work's arguments; the child reads `file` by ranges through it (services/media/rangefile.py)."""

    ref: RangeSource
    file: io.RawIOBase
    served: list[int] = field(default_factory=list)  # bytes the child read, per run


@contextmanager
def ranged(rt: Runtime, src: Mapping[str, Any]) -> Iterator[Source]:
    """The original `src` (a message's source reference) opened for ranged reads: a segment reads
    the container's index and its own span, and no copy of the source is written anywhere."""
    s = rt.settings
    file, size = rt.blobs.open_ranged(src["bucket"], src["name"], src["generation"], s.source_read_block_bytes,
                                      s.source_read_cache_blocks)
    with file:
        yield Source(RangeSource(size), file)


def run_for_job(jobs: JobStoreBase, job_id: str, stage: str, work: Callable[[bytes], T], raw: bytes = b"", *,
                crash_attempts: int, limits: ChildLimits, on_start: Callable[[Running], None] | None = None,
                watch_seconds: float = 1.0, source: Source | None = None) -> T:
    """`run`, watching the job every `watch_seconds` (a cancelled job's child is killed) and
    with crashes counted on the job (JobStore.record_crash): the same input crashing the decoder
    `crash_attempts` times is `corrupt-media`; before that, a retry (503)."""
    used: list[ChildUsage] = []
    try:
        result: T = run(work, raw, limits=limits, on_start=on_start, watch=job_watch(jobs, job_id, stage),
                        watch_seconds=watch_seconds, source=source.file if source else None,
                        served=source.served if source else None, used=used)  # what work returned in the child
        return result
    except ChildCrashed as exc:
        crashes = jobs.record_crash(job_id, stage, exc.reason)
        logger.warning("%s: media child crashed (%s), %d of %d", stage, exc.signal_name, crashes, crash_attempts)
        if crashes >= crash_attempts:
            raise CorruptMedia(f"{exc.reason} on this file {crashes} times (MEDIA_CRASH_ATTEMPTS={crash_attempts})",
                               code="decoder-crash") from None
        raise
    finally:
        for child in used:  # the job's cost (services/pipeline/usage.py)
            usage.media_child(child.cpu_seconds, child.peak_memory_bytes, child.wall_seconds)


_admission: dict[int, Admission] = {}


def stage_limits(rt: Runtime, stage: str) -> ChildLimits:
    """ChildLimits of a job of `stage` starting now (call when the push arrives, before the download)."""
    ack = rt.topology.subscription_for_service(stage).ack_deadline_seconds
    return ChildLimits.for_stage(rt.settings, ack, stage)


def segment_limits(rt: Runtime, stage: str) -> ChildLimits:
    """ChildLimits of one segment of `stage` starting now: from the segment subscription's ack deadline."""
    ack = rt.topology.subscription_for_service(stage, SEGMENTS_PATH).ack_deadline_seconds
    return ChildLimits.for_stage(rt.settings, ack, f"one {stage} segment")


def _admission_of(rt: Runtime) -> Admission:
    s = rt.settings
    admission = _admission.get(s.instance_memory_bytes)
    if admission is None:  # one per process (the instance's memory is read once)
        admission = _admission[s.instance_memory_bytes] = Admission(s.instance_memory_bytes)
    return admission


def request_work(rt: Runtime, what: str, work: Callable[[bytes], T], *, limits: ChildLimits, need_bytes: int,
                 source: Source) -> T:
    """Media work a client's request waits for (a derivative image): admission on this instance and
    the same bounded child, but nothing counted on the job: a finished job's document is not
    written for a page view, and a crash is answered 503 to that request alone."""
    with _admission_of(rt).admit(need_bytes, what) as hand_over:
        result: T = run(work, b"", source.ref, limits=limits, on_start=hand_over, source=source.file, served=source.served)
        return result


def media_work(rt: Runtime, stage: str, job_id: str, work: Callable[[bytes], T], *, limits: ChildLimits,
               need_bytes: int = 0, raw: bytes = b"", source: Source | None = None) -> T:
    """What a stage calls: admission for `need_bytes` on this instance, then work(raw) in a
    bounded child, crashes counted on the job; `source` (ranged()) when the work's arguments hold
    its ref. `work` is a module-level function of the raw bytes, its other arguments bound by
    keyword (functools.partial): it is pickled to the child."""
    s = rt.settings
    with _admission_of(rt).admit(need_bytes, f"this {stage} job") as hand_over:
        return run_for_job(rt.jobs, job_id, stage, work, raw, crash_attempts=s.media_crash_attempts, limits=limits,
                           on_start=hand_over, watch_seconds=s.media_cancel_poll_seconds, source=source)
