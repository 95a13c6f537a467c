"""Webhook delivery on Pub/Sub: fan-out from media-events, one POST per delivery message.

notify's push subscription on `media-events` (/push/events) turns each final event into one
`webhook-deliveries` message per endpoint of the job's client subscribed to that outcome; that
topic's push subscription (/push/webhooks) brings each back to notify, which POSTs the event
— the exact `media-events` body — signed per Standard Webhooks. Retries, backoff,
dead-lettering and `dlq replay` are Pub/Sub's, as for the stages: 2xx → delivered (recorded
on the job); 410 → endpoint disabled; anything else or no answer → 503, redelivered; the
last attempt marks the endpoint unhealthy before Pub/Sub dead-letters the message.
"""
from __future__ import annotations

import logging
import time

from ..common.errors import PermanentError, TransientError
from ..common.logs import log
from ..pipeline.bus import encode
from ..pipeline.envelope import PushMessage
from ..pipeline.jobstore import utcnow
from ..pipeline.runtime import Runtime
from ..pipeline.topology import PushSubscription
from . import signing, ssrf
from .endpoints import EndpointStore

logger = logging.getLogger("mediarelay.webhooks")
TOPIC = "webhook-deliveries"


def owner_of(job: dict | None) -> str | None:
    """The client a job belongs to (its webhooks receive its events)."""
    return (job or {}).get("owner")


def fan_out(rt: Runtime, endpoints: EndpointStore, sub: PushSubscription, msg: PushMessage) -> None:
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


def deliver(rt: Runtime, endpoints: EndpointStore, sub: PushSubscription, msg: PushMessage) -> None:
    endpoint_id, job_id, event = msg.data["endpoint_id"], msg.data["job_id"], msg.data["event"]
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None or endpoint.get("disabled"):
        log(logger, logging.INFO, "webhook not sent: endpoint removed or disabled", endpoint_id=endpoint_id)
        return
    job = rt.jobs.get(job_id) or {}
    record = (job.get("webhooks") or {}).get(endpoint_id) or {}
    if record.get("delivered_at"):
        return  # a duplicate delivery message: this endpoint has the event already
    s = rt.settings
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
    except OSError as exc:
        answer, outcome = None, f"no answer within WEBHOOK_TIMEOUT_SECONDS={s.webhook_timeout_seconds:g}: {exc}"
    now = utcnow()
    prefix = f"webhooks.{endpoint_id}"
    fields = {f"{prefix}.attempts": record.get("attempts", 0) + 1, f"{prefix}.last_attempt_at": now,
              f"{prefix}.last_outcome": outcome, f"{prefix}.url": endpoint["url"]}
    if answer is not None:
        fields[f"{prefix}.last_status"] = answer.status
        fields[f"{prefix}.latency_ms"] = answer.elapsed_ms
    ok = answer is not None and 200 <= answer.status < 300
    if ok:
        fields[f"{prefix}.delivered_at"] = now
    rt.jobs.record(job_id, fields)
    if answer is not None and ok:
        endpoints.update(endpoint_id, {"health": {"state": "ok", "last_status": answer.status, "at": now}})
        log(logger, logging.INFO, "webhook delivered", endpoint_id=endpoint_id, latency_ms=answer.elapsed_ms)
        return
    if answer is not None and answer.status == 410:
        endpoints.update(endpoint_id, {"disabled": {"reason": "the receiver answered 410 Gone", "at": now}})
        log(logger, logging.WARNING, "webhook endpoint disabled: 410 Gone", endpoint_id=endpoint_id)
        return
    if msg.delivery_attempt is not None and msg.delivery_attempt >= sub.max_delivery_attempts:
        endpoints.update(endpoint_id, {"health": {"state": "unhealthy", "reason": f"dead-lettered after "
                                                  f"{msg.delivery_attempt} attempts: {outcome}", "at": now}})
    raise TransientError(f"webhook to {endpoint['url']}: {outcome}")
