"""A job's time budget: media work stops with `limit-exceeded`, naming the setting, before the push ack deadline.

Checked between steps and inside long loops (video frames, animation frames, renditions).
The deadline is absolute on the monotonic clock, which every process of the machine shares:
a Budget made in a stage's process is valid in its media child (services/media/sandbox.py).

A check also runs the interrupt hook the pipeline installs (`on_check`): in a stage's own
process it stops work on a job that has ended meanwhile. Media code never imports the
pipeline, so a media child, which never installs it, pays nothing for it.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..common.errors import LimitExceeded


def _no_interrupt() -> None:
    return None


_interrupt: Callable[[], None] = _no_interrupt


def on_check(hook: Callable[[], None]) -> None:
    """Run `hook` at every budget check of this process (it raises to stop the work)."""
    global _interrupt
    _interrupt = hook


class Budget:
    def __init__(self, seconds: float, setting: str = "STAGE_TIME_BUDGET_SECONDS", *, deadline: float | None = None,
                 work: str = "analysis", reason: str = ""):
        self.seconds = seconds
        self.setting = setting
        self.work = work
        self.reason = reason or f"{setting}={seconds:g} s"  # what the deadline is, for a person
        self.deadline = time.monotonic() + seconds if deadline is None else deadline

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(float("inf"))

    def sooner(self, other: Budget) -> Budget:
        return self if self.deadline <= other.deadline else other

    def check(self, step: str) -> None:
        _interrupt()  # e.g. a job cancelled meanwhile stops here (in the stage's own process)
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"{self.work} ran past {self.reason} (while {step})", code="time-budget")
