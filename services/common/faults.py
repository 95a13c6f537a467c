"""Chaos switch for fault-injection tests: fail a share of calls with a transient error.

`FAULT_INJECTION="storage=0.2,firestore=0.2,pubsub=0.1,stage.render=1"` makes that share of
Google API calls (or of a stage's runs) raise ServiceUnavailable before they are made
(services/pipeline/retrying.py: maybe_fail). It is empty in production and the code path is
the same either way: a real 503 from GCS takes exactly the route an injected one does.
`media-crash.<function>` kills a media child instead.
"""
from __future__ import annotations

import os
import random
import signal
from functools import lru_cache

from .config import get_settings


@lru_cache(maxsize=1)
def _rates() -> dict[str, float]:
    rates = {}
    for part in get_settings().fault_injection.split(","):
        name, _, value = part.strip().partition("=")
        if name and value:
            rates[name] = float(value)
    return rates


def should_fail(target: str) -> bool:
    """True for FAULT_INJECTION's share of calls to `target` (the caller raises as the real failure would)."""
    rate = _rates().get(target, 0.0)
    return bool(rate) and random.random() < rate


def maybe_crash(target: str) -> None:
    """`media-crash.<function>=1`: the media child running that function dies by SIGSEGV, as a
    decoder bug would (services/media/sandbox.py counts it on the job)."""
    if should_fail(target):
        os.kill(os.getpid(), signal.SIGSEGV)
