"""Webhook delivery on Pub/Sub: fan-out from media-events, one POST per delivery message.

notify's push subscription on `media-events` (/push/events) turns each final event into one
`webhook-deliveries` message per endpoint of the job's client subscribed to that outcome; that
topic's push subscription (/push/webhooks) brings each back to notify, which POSTs the event
— the exact `media-events` body — signed per Standard Webhooks. Retries, backoff,
dead-lettering and `dlq replay` are Pub/Sub's, as for the stages: 2xx → delivered (recorded
on the job); 410 → endpoint disabled; anything else or no answer within the attempt's bound
(ssrf.post) → 503, redelivered, told on the endpoint's `health` and counted by its circuit
breaker (breaker.py); the last attempt marks the endpoint unhealthy before Pub/Sub
dead-letters the message. A client's share of this instance's threads is capped (fairness.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import NoReturn

from ..common.errors import PermanentError, TransientError
from ..common.logs import log
from ..pipeline.bus import encode
from ..pipeline.envelope import PushMessage
from ..pipeline.jobstate import FINAL, Job
from ..pipeline.jobstore import utcnow
from ..pipeline.runtime import Runtime
from ..pipeline.topology import PushSubscription
from . import breaker, signing, ssrf
from .endpoints import EndpointStore
from .fairness import ClientSlots

logger = logging.getLogger("mediarelay.webhooks")
TOPIC = "webhook-deliveries"


def owner_of(job: Job | None) -> str | None:
    """The client a job belongs to (its webhooks receive its events)."""
    return job.get("owner") if job is not None else None


def fan_out(rt: Runtime, sub: PushSubscription, msg: PushMessage, *, endpoints: EndpointStore) -> None:
    event = msg.data
    client_id = owner_of(rt.jobs.get(event["job_id"]))
    if not client_id:
        return
    matching = endpoints.matching(client_id, event["status"])
    for endpoint in matching:
        payload = {"endpoint_id": endpoint["id"], "job_id": event["job_id"], "event": event}
        rt.bus.publish(TOPIC, payload, job_id=event["job_id"])
    if matching:
        log(logger, logging.INFO, "webhook deliveries published", event_id=event["id"], endpoints=len(matching))


def record_key(endpoint_id: str, event: dict) -> str:
    """Where the job records one endpoint's delivery of `event`: the final event under the
    endpoint's id (as before v3), a lifecycle event (`deleted`) under `<endpoint>_<status>`, so
    the final event's record does not make it look delivered already."""
    return endpoint_id if event["status"] in FINAL else f"{endpoint_id}_{event['status']}"


def deliver(rt: Runtime, sub: PushSubscription, msg: PushMessage, *, endpoints: EndpointStore, slots: ClientSlots) -> None:
    """One delivery message. Every way it can go is an answer, never a bug: sent (2xx), disabled
    (410), refused by the SSRF guard (dead-lettered), or retry later (503) — after a failed
    attempt (told on the endpoint's `health`), while its breaker is open, or while its client
    already has WEBHOOK_CLIENT_CONCURRENCY attempts in flight here."""
    endpoint_id, job_id = msg.data["endpoint_id"], msg.data["job_id"]
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None or endpoint.get("disabled"):
        log(logger, logging.INFO, "webhook not sent: endpoint removed or disabled", endpoint_id=endpoint_id)
        return
    job = rt.jobs.get(job_id)
    key = record_key(endpoint_id, msg.data["event"])
    record = ((job.get("webhooks") if job is not None else None) or {}).get(key) or {}
    if record.get("delivered_at"):
        return  # a duplicate delivery message: this endpoint has the event already
    s = rt.settings
    last = msg.delivery_attempt is not None and msg.delivery_attempt >= sub.max_delivery_attempts
    # The lease of a half-open trial: the attempt's bound, and time to record how it went.
    lease = dt.timedelta(seconds=s.webhook_timeout_seconds + 10)
    gate, claim = breaker.gate(endpoint, utcnow(), lease)
    if not gate.send:
        _not_sent(endpoints, endpoint_id, gate.reason, msg.delivery_attempt if last else None)
    client_id = endpoint["client_id"]
    if not slots.acquire(client_id, s.webhook_client_concurrency, force=last):
        raise TransientError(f"client {client_id} already has {s.webhook_client_concurrency} webhook attempts in flight "
                             "on this instance (WEBHOOK_CLIENT_CONCURRENCY): retried later")
    try:
        if claim:  # the breaker half-opens: one delivery wins the trial, the others retry later
            decided = endpoints.decide(endpoint_id, lambda doc: breaker.gate(doc, utcnow(), lease))
            if decided is None:
                return  # the endpoint was removed meanwhile
            if not decided.send:
                _not_sent(endpoints, endpoint_id, decided.reason, msg.delivery_attempt if last else None)
        _attempt(rt, endpoints, endpoint, job_id, msg.data["event"], key=key, record=record,
                 last_attempt=msg.delivery_attempt if last else None)
    finally:
        slots.release(client_id)


def _not_sent(endpoints: EndpointStore, endpoint_id: str, reason: str, last_attempt: int | None) -> NoReturn:
    if last_attempt is not None:
        endpoints.update(endpoint_id, {"health.state": "unhealthy", "health.at": utcnow(),
                                       "health.reason": f"dead-lettered after {last_attempt} attempts: {reason}"})
    raise TransientError(f"webhook not sent: {reason}")


def _attempt(rt: Runtime, endpoints: EndpointStore, endpoint: dict, job_id: str, event: dict, *, key: str, record: dict,
             last_attempt: int | None) -> None:
    endpoint_id, s = endpoint["id"], rt.settings
    try:
        target = ssrf.check(endpoint["url"], s.webhook_allow_hosts)
    except ssrf.Refused as exc:
        endpoints.update(endpoint_id, {"health": {"state": "refused", "reason": exc.reason, "at": utcnow()}})
        raise PermanentError(f"webhook to {endpoint['url']} refused: {exc.reason}", code="ssrf-refused") from None
    body = encode(event)  # byte for byte the media-events message
    headers = signing.headers(endpoints.signing_secrets(endpoint), event["id"], int(time.time()), body)
    answer: ssrf.Answer | None
    try:
        answer = ssrf.post(target, body, headers, s.webhook_timeout_seconds)
        outcome = f"HTTP {answer.status}"
    except ssrf.Failed as exc:
        answer, outcome = None, exc.reason
    now = utcnow()
    prefix = f"webhooks.{key}"
    fields = {f"{prefix}.attempts": record.get("attempts", 0) + 1, f"{prefix}.last_attempt_at": now,
              f"{prefix}.last_outcome": outcome, f"{prefix}.url": target.url}
    if answer is not None:
        fields[f"{prefix}.last_status"] = answer.status
        fields[f"{prefix}.latency_ms"] = answer.elapsed_ms
    ok = answer is not None and 200 <= answer.status < 300
    if ok:
        fields[f"{prefix}.delivered_at"] = now
    rt.jobs.record(job_id, fields)
    if answer is not None and ok:
        endpoints.update(endpoint_id, breaker.after_success(now, answer.status, answer.elapsed_ms))
        log(logger, logging.INFO, "webhook delivered", endpoint_id=endpoint_id, latency_ms=answer.elapsed_ms)
        return
    if answer is not None and answer.status == 410:
        endpoints.update(endpoint_id, {"disabled": {"reason": "the receiver answered 410 Gone", "at": now}})
        log(logger, logging.WARNING, "webhook endpoint disabled: 410 Gone", endpoint_id=endpoint_id)
        return
    dead = f"dead-lettered after {last_attempt} attempts: {outcome}" if last_attempt is not None else ""
    endpoints.decide(endpoint_id, lambda doc: (None, breaker.after_failure(
        doc, outcome, now, threshold=s.webhook_breaker_threshold, open_for=dt.timedelta(seconds=s.webhook_breaker_open_seconds),
        status=answer.status if answer is not None else None, dead_lettered=dead)))
    raise TransientError(f"webhook to {target.url}: {outcome}")
