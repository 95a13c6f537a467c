"""Media work in a bounded child process: one mechanism for every stage.

Every decode/analysis/render runs in a child forked from a per-process forkserver that has
the heavy imports (numpy, OpenCV, Pillow, the stage's modules) done once, so a job's spawn
costs a fork and a pipe (measured in bench/memory_bench.py). The child gets the media bytes
over a pipe and returns its outputs; storage, Firestore and Pub/Sub stay in the stage's
process. The child runs under
- an address-space limit (RLIMIT_AS): MEDIA_MEMORY_LIMIT_BYTES above its size at start
  (reserved arenas and thread stacks count: it is an upper bound on what a job maps);
- a CPU-time limit (RLIMIT_CPU): MEDIA_CPU_LIMIT_SECONDS;
- a wall-clock deadline: the stage's push ack deadline (topology) minus
  STAGE_DEADLINE_MARGIN_SECONDS, so Pub/Sub never redelivers while the first attempt runs.
Over a limit -> the child is stopped and the job fails `limit-exceeded` naming the setting.
Killed by a signal we did not send (a decoder's segfault, the kernel's OOM killer) -> the
crash is counted on the job; once it happened MEDIA_CRASH_ATTEMPTS times on the same input
the job fails `corrupt-media`, before that the delivery is retried (503). The stage's
threads keep serving (/healthz) while a child works: waiting on a pipe holds no GIL.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait

from ..common import faults
from ..common.errors import CorruptMedia, LimitExceeded, PermanentError, TransientError, UnsupportedMedia
from . import rangefile
from .budget import Budget

logger = logging.getLogger("mediarelay.sandbox")
KILL_GRACE_SECONDS = 2.0  # the child's own budget checks name the step; past this the parent kills it
_PERMANENT = {c.error_class: c for c in (LimitExceeded, CorruptMedia, UnsupportedMedia)}
_BASE_PRELOAD = ["numpy", "cv2", "PIL.Image", "services.media.budget", "services.media.rangefile", "services.media.sandbox"]
_ctx = multiprocessing.get_context("forkserver")
_preload: list[str] = list(_BASE_PRELOAD)
_started = 0  # children this process started: what a test reads to see a cached answer spawned none


def children_started() -> int:
    return _started


@dataclass(frozen=True)
class ChildLimits:
    memory_bytes: int
    cpu_seconds: int
    deadline: float  # time.monotonic()
    deadline_reason: str  # how the deadline was derived, for a person

    @classmethod
    def for_stage(cls, settings, ack_deadline_seconds: float, stage: str, started: float | None = None) -> ChildLimits:
        started = time.monotonic() if started is None else started
        seconds = max(1.0, ack_deadline_seconds - settings.stage_deadline_margin_seconds)
        why = (f"{stage}'s deadline of {seconds:g} s (its push ack deadline {ack_deadline_seconds:g} s minus "
               f"STAGE_DEADLINE_MARGIN_SECONDS={settings.stage_deadline_margin_seconds:g})")
        return cls(settings.media_memory_limit_bytes, settings.media_cpu_limit_seconds, started + seconds, why)


    def budget(self, work: str) -> Budget:
        """The same deadline for the child's own checks inside long loops (they name the step)."""
        return Budget(self.deadline - time.monotonic(), deadline=self.deadline, work=work, reason=self.deadline_reason)


@dataclass(frozen=True)
class ChildUsage:
    """What one child used, from its own getrusage(RUSAGE_SELF) as it answered (a forkserver's
    child is not ours to wait4 for): the job's cost counts it (services/pipeline/usage.py)."""

    cpu_seconds: float  # ru_utime + ru_stime, every thread of the child
    peak_memory_bytes: int  # ru_maxrss
    wall_seconds: float


class ChildCrashed(TransientError):
    """The child died by a signal we did not send: maybe the file, maybe the machine."""

    def __init__(self, reason: str, signal_name: str):
        super().__init__(reason, code="media-child-crashed")
        self.signal_name = signal_name


class ChildFailed(Exception):
    """An unexpected exception inside the child: a bug of ours, treated as `internal` by the stage."""


def preload(modules: list[str]) -> None:
    """The stage's media modules, imported once in the forkserver (call before the first `run`)."""
    global _preload
    _preload = list(dict.fromkeys(_BASE_PRELOAD + modules))
    _ctx.set_forkserver_preload(_preload)


def warm_up() -> None:
    """Start the forkserver now, off the request path (its imports take a second or two)."""
    threading.Thread(target=lambda: _safe_run(_noop), name="sandbox-warm-up", daemon=True).start()


def _noop(raw: bytes) -> int:
    return len(raw)


def _safe_run(fn):
    try:
        run(fn, b"", limits=ChildLimits(2**30, 60, time.monotonic() + 60, "warm-up"))
    except Exception:  # warming is an optimisation; the first job will start it otherwise
        logger.warning("media child warm-up failed", exc_info=True)


class Running:
    """One job's child, for admission (services/media/admission.py reads its memory)."""

    def __init__(self, pid: int):
        self.pid = pid

    def rss_bytes(self) -> int:
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0


def run(fn: Callable, raw: bytes, *args, limits: ChildLimits, on_start: Callable[[Running], None] | None = None,
        watch: Callable[[], None] | None = None, watch_seconds: float = 1.0, source=None, served: list | None = None,
        used: list[ChildUsage] | None = None):
    """fn(raw, *args) in a bounded child; its return value, or the error it raised (error
    classes cross over as themselves), or LimitExceeded / ChildCrashed when it was stopped.
    `watch` is called every `watch_seconds` while the child works: when it raises (the job was
    cancelled), the child is killed at once and that exception is raised here. `source`: a
    seekable binary file object the child reads by ranges through a `rangefile.RangeSource`
    among `args` (rangefile.py); the bytes it read are appended to `served` when given. What the
    child used is appended to `used` when it answered (a child stopped or crashed reports nothing)."""
    global _started
    _started += 1
    parent, child = _ctx.Pipe(duplex=True)
    ranges, child_ranges = _ctx.Pipe(duplex=True) if source is not None else (None, None)
    proc = _ctx.Process(target=_child_main, args=(child, fn, limits.memory_bytes, limits.cpu_seconds, limits.deadline),
                        kwargs={"ranges": child_ranges}, name="media-child", daemon=True)
    proc.start()
    child.close()
    server = None
    if ranges is not None and child_ranges is not None:
        child_ranges.close()
        server = rangefile.Server(ranges, source)
    killed = False
    stopped: Exception | None = None
    try:
        if on_start:
            on_start(Running(proc.pid or 0))
        try:
            parent.send_bytes(raw)
            parent.send(args)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died at once: judged from its exit below
        ready, stopped = _wait(parent, proc, limits.deadline + KILL_GRACE_SECONDS, watch, watch_seconds)
        message = None
        if parent in ready:
            try:
                message = parent.recv()
            except (EOFError, ConnectionResetError, OSError):
                message = None
        if not ready:
            killed = stopped is None
            proc.kill()
        proc.join(5)
        if proc.exitcode is None:  # sent its answer but does not exit: nothing more is needed from it
            proc.kill()
            proc.join(5)
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        if server is not None:
            server.stop()
            if served is not None:
                served.append(server.served)
    if stopped is not None:
        raise stopped
    if server is not None and server.error is not None:
        raise server.error  # the source could not be read (storage): that, not what the decoder made of it
    if killed:
        raise LimitExceeded(f"media work ran past {limits.deadline_reason} and was stopped", code="deadline")
    if message is not None:
        status, payload, usage = message
        if used is not None:
            used.append(usage)
        return _result(status, payload)
    return _judge_exit(proc.exitcode, limits)


def _wait(parent, proc, until: float, watch: Callable[[], None] | None, every: float) -> tuple[list, Exception | None]:
    """Wait for the child's answer or exit until `until` (monotonic); ([], None) at the deadline,
    ([], exc) when `watch` raised exc."""
    while True:
        remaining = until - time.monotonic()
        ready = wait([parent, proc.sentinel], timeout=max(0.0, remaining if watch is None else min(remaining, every)))
        if ready or watch is None or time.monotonic() >= until:
            return ready, None
        try:
            watch()
        except Exception as exc:  # noqa: BLE001 - the watch's own error (Cancelled) ends the work as it says
            return [], exc


def _result(status: str, payload):
    """The child's answer (status, payload, usage) without its usage: the work's value or its error."""
    if status == "ok":
        return payload
    if status == "error":
        error_class, reason, code = payload
        raise _PERMANENT.get(error_class, PermanentError)(reason, code=code)
    raise ChildFailed(payload[0])


def _judge_exit(code: int | None, limits: ChildLimits):
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        if sig == signal.SIGXCPU:
            raise LimitExceeded(f"media work used more than MEDIA_CPU_LIMIT_SECONDS={limits.cpu_seconds} s of CPU "
                                "and was stopped", code="cpu-time")
        raise ChildCrashed(f"the media decoder crashed ({sig.name})", sig.name)
    raise ChildCrashed(f"the media decoder exited without an answer (exit status {code})", f"exit {code}")


# --- in the child ------------------------------------------------------------------------------

M_ARENA_MAX = -8


def _name(fn: Callable) -> str:
    """The work's function name (FAULT_INJECTION's `media-crash.<function>`), through a functools.partial."""
    return getattr(fn, "func", fn).__name__


def _child_main(conn, fn: Callable, memory_bytes: int, cpu_seconds: int, deadline: float, *, ranges=None) -> None:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rangefile.attach(ranges)
    try:  # two malloc arenas instead of 8 per core: less reserved address space under RLIMIT_AS
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = _address_space()
    resource.setrlimit(resource.RLIMIT_AS, (base + memory_bytes, base + memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        raw = conn.recv_bytes()
        args = conn.recv()
        faults.maybe_crash(f"media-crash.{_name(fn)}")
        result = fn(raw, *args)
        del raw
        conn.send(("ok", result, _usage(started)))
    except MemoryError:
        conn.send(("error", ("limit-exceeded", f"media work needed more than MEDIA_MEMORY_LIMIT_BYTES={memory_bytes} "
                   "bytes of memory", "memory"), _usage(started)))
    except PermanentError as exc:
        conn.send(("error", (exc.error_class, exc.reason, exc.code), _usage(started)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which treats it as `internal`
        if _out_of_memory(exc):
            conn.send(("error", ("limit-exceeded", f"media work needed more than MEDIA_MEMORY_LIMIT_BYTES={memory_bytes} "
                       "bytes of memory", "memory"), _usage(started)))
        else:
            conn.send(("internal", (f"{type(exc).__name__}: {exc}",), _usage(started)))
    finally:
        conn.close()


def _usage(started: float) -> ChildUsage:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return ChildUsage(r.ru_utime + r.ru_stime, r.ru_maxrss * 1024, time.monotonic() - started)  # Linux: maxrss in KiB


def _out_of_memory(exc: Exception) -> bool:
    """OpenCV and Pillow report a failed allocation as their own error types."""
    text = str(exc).lower()
    return any(w in text for w in ("insufficient memory", "failed to allocate", "out of memory", "cannot allocate memory"))


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
