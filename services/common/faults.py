"""Chaos switch for fault-injection tests: fail a share of calls with a transient error.

`FAULT_INJECTION="storage=0.2,firestore=0.2,pubsub=0.1,stage.render=1"` makes that share of
Google API calls (or of a stage's runs) raise ServiceUnavailable before they are made. It is
empty in production and the code path is the same either way: a real 503 from GCS takes
exactly the route an injected one does. `media-crash.<function>` kills a media child instead.
"""
from __future__ import annotations

import os
import random
import signal
from functools import lru_cache

from google.api_core import exceptions as gexc


@lru_cache(maxsize=1)
def _rates() -> dict[str, float]:
    rates = {}
    for part in os.environ.get("FAULT_INJECTION", "").split(","):
        name, _, value = part.strip().partition("=")
        if name and value:
            rates[name] = float(value)
    return rates


def maybe_fail(target: str) -> None:
    rate = _rates().get(target, 0.0)
    if rate and random.random() < rate:
        raise gexc.ServiceUnavailable(f"injected fault ({target}, FAULT_INJECTION)")


def maybe_crash(target: str) -> None:
    """`media-crash.<function>=1`: the media child running that function dies by SIGSEGV, as a
    decoder bug would (services/common/sandbox.py counts it on the job)."""
    rate = _rates().get(target, 0.0)
    if rate and random.random() < rate:
        os.kill(os.getpid(), signal.SIGSEGV)
