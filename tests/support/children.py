"""Work for the bounded media child in tests: it imports only what the forkserver already has
(a child unpickles its function by importing the function's module, and a test module that
pulls in the Google clients costs the child ~1 s of CPU before the work starts)."""
from __future__ import annotations

import os
import signal
import time

from services.common.errors import CorruptMedia


def allocate(raw: bytes) -> int:
    return len(bytearray(2**31))


def spin(raw: bytes) -> None:
    while True:
        pass


def sleep(raw: bytes) -> None:
    time.sleep(60)


def segfault(raw: bytes) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def corrupt(raw: bytes) -> None:
    raise CorruptMedia("no pixels after the header", code="corrupt-image")


def bug(raw: bytes) -> None:
    raise KeyError("width")


def busy(raw: bytes) -> int:
    """About 0.3 s of CPU with 200 MiB touched: what the child's rusage must report."""
    block = bytearray(200 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    until = time.process_time() + 0.3
    while time.process_time() < until:
        pass
    return len(block)
