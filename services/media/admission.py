"""Admission per instance: work starts only when the memory it declares fits what is left.

A stage declares a job's need from the file's headers (precheck.MediaFacts.need_bytes)
before it starts the media child. Refused work is answered 503 (TransientError): Pub/Sub
redelivers it later, maybe to another instance, instead of this one starting it and being
OOM-killed with every other job on it. Work that could never fit (need over the whole
instance) is refused for good, naming INSTANCE_MEMORY_BYTES.

Instance memory: INSTANCE_MEMORY_BYTES, else the cgroup's memory.max, else the machine's.
Memory in use: the cgroup's memory.current (every worker of the instance), else without a
cgroup the machine's used memory, or with INSTANCE_MEMORY_BYTES set this process and its
children only (a per-worker view). Jobs admitted by this process but not yet grown to
their declared need count as reserved.
"""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from contextlib import contextmanager

from ..common.errors import LimitExceeded, TransientError

CGROUP = "/sys/fs/cgroup"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _tree_rss() -> int:
    """RSS of this process and its direct children (the media children)."""
    pids = [os.getpid()]
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total


class Admission:
    def __init__(self, instance_memory_bytes: int = 0, used: Callable[[], int] | None = None):
        cgroup_max = _read_int(f"{CGROUP}/memory.max")
        self.total = instance_memory_bytes or cgroup_max or _meminfo("MemTotal")
        self.setting = "INSTANCE_MEMORY_BYTES" if instance_memory_bytes else "the instance's memory"
        if used is not None:
            self.used = used
        elif _read_int(f"{CGROUP}/memory.current") is not None:
            self.used = lambda: _read_int(f"{CGROUP}/memory.current") or 0
        elif instance_memory_bytes:
            self.used = _tree_rss
        else:
            self.used = lambda: _meminfo("MemTotal") - _meminfo("MemAvailable")
        self._lock = threading.Lock()
        self._admitted: dict[int, list] = {}  # key -> [need, rss callable or None]
        self._keys = itertools.count()

    def _reserved(self) -> int:
        return sum(max(0, need - (rss() if rss else 0)) for need, rss in self._admitted.values())

    @contextmanager
    def admit(self, need: int, what: str):
        """Hold a reservation of `need` bytes while the body runs; the body gets a callback to
        hand over its child (so the reservation shrinks as the child's real memory grows)."""
        if need > self.total:
            raise LimitExceeded(f"{what} declares ~{need // 2**20} MiB of work memory, more than {self.setting}="
                                f"{self.total} holds", code="too-much-memory")
        with self._lock:
            free = self.total - self.used() - self._reserved()
            if need > free:
                raise TransientError(f"{what} needs ~{need // 2**20} MiB and this instance has ~{max(0, free) // 2**20} MiB "
                                     "left; retried later", code="instance-busy")
            key = next(self._keys)
            entry = [need, None]
            self._admitted[key] = entry
        try:
            yield lambda running: entry.__setitem__(1, running.rss_bytes)
        finally:
            with self._lock:
                self._admitted.pop(key, None)
