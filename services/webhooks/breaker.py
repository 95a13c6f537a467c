"""A circuit breaker per webhook endpoint, kept on its document (`breaker`), decided here as pure
functions of that document (the store applies them with compare-and-set).

- closed (no `breaker`): every delivery makes its attempt; each failed attempt (no answer within
  WEBHOOK_TIMEOUT_SECONDS, refused connection, any non-2xx but 410) adds one to
  `health.consecutive_failures`, a 2xx resets it. At WEBHOOK_BREAKER_THRESHOLD it opens.
- open (`state: open`, `until`): for WEBHOOK_BREAKER_OPEN_SECONDS every delivery to the endpoint
  answers 503 at once, with no network attempt, so Pub/Sub retries it with the subscription's
  backoff; a dead endpoint then costs a document read, not a thread held for the timeout.
- half-open: the first delivery after `until` claims the one trial (compare-and-set: `state:
  half-open`, `trial_until` = now + the attempt's lease); every other delivery still answers 503
  until the trial ends. The trial's 2xx closes the breaker (and resets the count); its failure
  opens it again for another WEBHOOK_BREAKER_OPEN_SECONDS. A trial whose instance died before it
  said how it went leaves a `trial_until` in the past: the next delivery claims a new trial.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..pipeline.jobstate import DELETE


@dataclass(frozen=True)
class Gate:
    send: bool
    reason: str = ""  # why not, for the 503
    trial: bool = False  # this attempt is the half-open trial


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%H:%M:%S UTC")


def gate(endpoint: dict, now: dt.datetime, lease: dt.timedelta) -> tuple[Gate, dict]:
    """(may this delivery make its attempt, updates claiming the trial)."""
    breaker = endpoint.get("breaker") or {}
    state = breaker.get("state")
    if state == "open" and now < breaker["until"]:
        return Gate(False, f"circuit open until {_when(breaker['until'])} after {breaker.get('failures', '?')} "
                           "consecutive failed attempts (WEBHOOK_BREAKER_THRESHOLD, WEBHOOK_BREAKER_OPEN_SECONDS)"), {}
    if state == "half-open" and now < breaker["trial_until"]:
        return Gate(False, "circuit half-open: a trial delivery to this endpoint is under way"), {}
    if state in ("open", "half-open"):
        return Gate(True, trial=True), {"breaker.state": "half-open", "breaker.trial_until": now + lease}
    return Gate(True), {}


def after_success(now: dt.datetime, status: int, latency_ms: int) -> dict:
    """A 2xx: healthy again, the breaker closed. Last error kept, for the record."""
    return {"health.state": "ok", "health.last_status": status, "health.latency_ms": latency_ms, "health.at": now,
            "health.last_success_at": now, "health.consecutive_failures": 0, "health.reason": DELETE,
            "breaker": DELETE}


def after_failure(endpoint: dict, error: str, now: dt.datetime, *, threshold: int, open_for: dt.timedelta,
                  status: int | None = None, dead_lettered: str = "") -> dict:
    """A failed attempt: counted, told on `health`; the breaker opens at the threshold, or again
    when the failed attempt was the half-open trial. `dead_lettered` (the last attempt) marks the
    endpoint unhealthy, as Pub/Sub dead-letters the message next."""
    health = endpoint.get("health") or {}
    failures = int(health.get("consecutive_failures") or 0) + 1
    breaker = endpoint.get("breaker") or {}
    updates: dict = {"health.consecutive_failures": failures, "health.last_error": error, "health.last_error_at": now,
                     "health.at": now, "health.last_status": status if status is not None else DELETE}
    state, reason = "failing", f"{failures} consecutive failed attempts, the last: {error}"
    if failures >= threshold or breaker.get("state") == "half-open":
        updates["breaker"] = {"state": "open", "since": now, "until": now + open_for, "failures": failures}
        state, reason = "circuit-open", f"{reason}; deliveries paused until {_when(now + open_for)}"
    if dead_lettered:
        state, reason = "unhealthy", dead_lettered
    updates.update({"health.state": state, "health.reason": reason})
    return updates
