"""In-process retries of single Google API calls: jittered exponential, bounded by a deadline.

Whole-stage retries are Pub/Sub's job (non-2xx answer); this only smooths over blips so a
stage does not fail for one 503. What is still failing after the deadline becomes a
TransientError, which the push handler answers with 503.
"""
from __future__ import annotations

import functools

from google.api_core import exceptions as gexc
from requests import exceptions as rexc
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from .errors import TransientError

RETRYABLE = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    rexc.ConnectionError,
    rexc.Timeout,
    ConnectionError,
    TimeoutError,
)

# Kept well below the shortest push ack deadline so the answer still reaches Pub/Sub.
CALL_DEADLINE_SECONDS = 20.0


def retried(fn):
    """Decorator: retry RETRYABLE errors, then raise TransientError naming the call."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(RETRYABLE),
                wait=wait_random_exponential(multiplier=0.1, max=5),
                stop=stop_after_delay(CALL_DEADLINE_SECONDS),
                reraise=True,
            ):
                with attempt:
                    return fn(*args, **kwargs)
        except RETRYABLE as exc:
            raise TransientError(f"{fn.__qualname__}: {type(exc).__name__}: {exc}") from exc

    return wrapper
