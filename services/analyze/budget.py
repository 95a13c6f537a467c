"""The per-job time budget: analysis stops with a permanent failure before the push ack deadline."""
from __future__ import annotations

import time

from ..common.errors import LimitExceeded
from ..common.stage import ensure_job_active


class Budget:
    """Deadline for one job's analysis; `check` is called between steps and every few video frames."""

    def __init__(self, seconds: float, setting: str = "STAGE_TIME_BUDGET_SECONDS"):
        self.seconds = seconds
        self.setting = setting
        self.deadline = time.monotonic() + seconds

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(float("inf"))

    def check(self, step: str) -> None:
        ensure_job_active()  # a cancelled job stops here
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                f"analysis ran past {self.setting}={self.seconds:g} s (while {step})",
                code="time-budget",
            )
