"""What one push delivery of a job used, for the job's estimated cost (services/pipeline/cost.py, docs/cost.md).

A delivery (a stage's input or one segment) runs inside `metering()`; the parts that spend
count into its Meter as they go: the media child's CPU time and peak memory (sandbox.run's
rusage, through media_work), objects written (blobs), messages published (bus), the job
store's Firestore operations (jobstore). Outside a delivery (ingest, the sweep, the CLI)
nothing is metered. The stage writes the snapshot with the record it writes anyway: the
hand-off on the job (`stages.<stage>.usage`) or, for a segment, its own finished-segment record
(summed at the fan-in: no document is written by every segment).

What is counted is our own calls, not Google's bill: a Firestore read per document read or
aggregation, a write per create/update, a delete per document deleted; a Pub/Sub message per
publish and per push delivery, each billed at least PUBSUB_MIN_BILLED_BYTES (Pub/Sub's minimum
per request).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PUBSUB_MIN_BILLED_BYTES = 1000  # Pub/Sub bills every publish and push request as at least 1000 bytes
WORK_PREFIX = "work/"  # objects under it are deleted after the fan-in (handon.work_prefix): written, not kept


@dataclass
class Usage:
    """One delivery's (or a sum of deliveries') use; the dict form is what the job stores."""

    requests: int = 0  # push deliveries (Cloud Run requests)
    wall_seconds: float = 0.0  # the requests' wall time (an instance is billed at least this while it serves them)
    cpu_seconds: float = 0.0  # media children's ru_utime + ru_stime, plus the request thread's own CPU
    peak_memory_bytes: int = 0  # the largest media child's ru_maxrss
    memory_gib_seconds: float = 0.0  # per child: its peak memory x its wall time
    bytes_written: int = 0  # objects written: renditions, HLS, MP4, work objects
    work_bytes_written: int = 0  # of those, under work/ (deleted after the fan-in)
    objects_written: int = 0  # GCS writes (Class A operations)
    messages: int = 0  # Pub/Sub messages published or delivered to us by push
    message_bytes: int = 0  # their billed volume
    firestore_reads: int = 0
    firestore_writes: int = 0
    firestore_deletes: int = 0

    def as_dict(self) -> dict[str, int | float]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Usage:
        """A stored usage record (unknown keys, from a newer release, are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (stored or {}).items() if k in known})


def total(records: Iterable[Mapping[str, Any] | None]) -> Usage:
    """The sum of stored usage records: counts and seconds add, the peak is the largest."""
    out = Usage()
    for record in records:
        u = Usage.of(record)
        for f in fields(Usage):
            a, b = getattr(out, f.name), getattr(u, f.name)
            setattr(out, f.name, max(a, b) if f.name == "peak_memory_bytes" else a + b)
    return out


def billed_message_bytes(size: int) -> int:
    return max(PUBSUB_MIN_BILLED_BYTES, size)


@dataclass
class Meter:
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)
    thread_cpu_started: float = field(default_factory=time.thread_time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, int | float]:
        """The usage so far, with this request's wall time and its thread's CPU time added."""
        with self.lock:
            u = Usage(**asdict(self.usage))
        u.wall_seconds += time.monotonic() - self.started
        u.cpu_seconds += time.thread_time() - self.thread_cpu_started
        return u.as_dict()


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("usage_meter", default=None)


@contextlib.contextmanager
def metering(delivered_bytes: int) -> Iterator[Meter]:
    """Meter one push delivery (its request body was `delivered_bytes`: a billed Pub/Sub delivery)."""
    meter = Meter()
    meter.usage.requests = 1
    meter.usage.messages = 1
    meter.usage.message_bytes = billed_message_bytes(delivered_bytes)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def snapshot() -> dict[str, int | float] | None:
    """This delivery's usage so far (None outside a metered delivery)."""
    meter = _meter.get()
    return meter.snapshot() if meter is not None else None


def restart() -> None:
    """What this delivery used so far is recorded (a segment's record): meter what follows (the
    fan-in it may claim) from zero, so the stage's sum does not count it twice."""
    meter = _meter.get()
    if meter is None:
        return
    with meter.lock:
        meter.usage = Usage()
        meter.started, meter.thread_cpu_started = time.monotonic(), time.thread_time()


def _add(**amounts: float) -> None:
    meter = _meter.get()
    if meter is None:
        return
    with meter.lock:
        for name, amount in amounts.items():
            setattr(meter.usage, name, getattr(meter.usage, name) + amount)


def media_child(cpu_seconds: float, peak_memory_bytes: int, wall_seconds: float) -> None:
    """One media child's rusage (services/media/sandbox.py ChildUsage)."""
    meter = _meter.get()
    if meter is None:
        return
    with meter.lock:
        meter.usage.cpu_seconds += cpu_seconds
        meter.usage.peak_memory_bytes = max(meter.usage.peak_memory_bytes, peak_memory_bytes)
        meter.usage.memory_gib_seconds += peak_memory_bytes / 2**30 * wall_seconds


def wrote(name: str, size: int) -> None:
    """An object created in storage (one adopted as it was, from an earlier delivery, is not counted again)."""
    _add(bytes_written=size, objects_written=1, work_bytes_written=size if name.startswith(WORK_PREFIX) else 0)


def published(size: int) -> None:
    _add(messages=1, message_bytes=billed_message_bytes(size))


def firestore(*, reads: int = 0, writes: int = 0, deletes: int = 0) -> None:
    _add(firestore_reads=reads, firestore_writes=writes, firestore_deletes=deletes)
