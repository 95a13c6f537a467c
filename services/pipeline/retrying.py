"""In-process retries of single Google API calls: jittered exponential, bounded by a deadline.

Whole-stage retries are Pub/Sub's job (non-2xx answer); this only smooths over blips so a
stage does not fail for one 503. What is still failing after the deadline becomes a
TransientError, which the push handler answers with 503.
"""
from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from google.api_core import exceptions as gexc
from requests import exceptions as rexc
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from ..common import faults
from ..common.errors import TransientError

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


# Calls retried in-process during the current request; stages record it on the job.
_retries: contextvars.ContextVar[int] = contextvars.ContextVar("call_retries", default=0)


def retries_so_far() -> int:
    return _retries.get()


def reset_retries() -> None:
    _retries.set(0)


P = ParamSpec("P")
R = TypeVar("R")
# google.api_core's exception classes are untyped: the one we raise (Google's 503), typed at the boundary.
unavailable = cast(Callable[[str], Exception], gexc.ServiceUnavailable)


def _count_retry(_: RetryCallState) -> None:
    _retries.set(_retries.get() + 1)


def retried(target: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator for calls to one Google API (`target`: storage, firestore, pubsub): retry
    RETRYABLE errors with jitter until the deadline, then raise TransientError naming the call."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            def call() -> R:
                maybe_fail(target)
                return fn(*args, **kwargs)

            try:
                return Retrying(
                    retry=retry_if_exception_type(RETRYABLE),
                    wait=wait_random_exponential(multiplier=0.1, max=5),
                    stop=stop_after_delay(CALL_DEADLINE_SECONDS),
                    before_sleep=_count_retry,
                    reraise=True,
                )(call)
            except RETRYABLE as exc:
                raise TransientError(f"{fn.__qualname__}: {type(exc).__name__}: {exc}") from exc

        return wrapper

    return decorate


def maybe_fail(target: str) -> None:
    """FAULT_INJECTION: fail this call to `target` as Google's 503 would, so it takes the real route."""
    if faults.should_fail(target):
        raise unavailable(f"injected fault ({target}, FAULT_INJECTION)")
