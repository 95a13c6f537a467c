"""The push endpoint of a pipeline stage: authenticate, parse, validate, run, classify.

Order inside a stage (DESIGN §5): work -> write outputs -> publish next -> mark stage done.
A stage handler does the work and writes outputs; this module publishes and marks, so the
order lives in one place. Answers: 204 acknowledged (done, duplicate, or permanently
failed and dead-lettered), 400 malformed push, 401/403 bad token, 503 transient (retry).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, Response, request

from . import faults
from .bus import encode
from .envelope import PushMessage, parse_push
from .errors import BadMessage, PermanentError, TransientError, problem_response
from .logs import bind_fields, log
from .retrying import RETRYABLE, reset_retries, retries_so_far
from .runtime import Runtime
from .schemas import validate
from .status import to_json
from .topology import PushSubscription

logger = logging.getLogger("mediarelay.stage")


@dataclass
class StageResult:
    """What a handler hands back: the next message(s) and the fields to store on the job."""

    publish: list[tuple[str, dict]] = field(default_factory=list)
    job_fields: dict = field(default_factory=dict)
    final: str | None = None  # "completed" for the last stage


Handler = Callable[[Runtime, dict, dict], StageResult]  # (runtime, job, message data)


def register_stage(app: Flask, runtime: Runtime, stage: str, handler: Handler) -> None:
    sub = runtime.topology.subscription_for_service(stage)
    expected_schema = runtime.topology.schema_of_topic(sub.topic)

    @app.post(sub.path)
    def push() -> Response:
        msg = read_push(runtime)
        bind_fields(stage=stage, message_id=msg.message_id, delivery_attempt=msg.delivery_attempt)
        try:
            _check_schema(runtime, msg, expected_schema)
        except BadMessage as exc:
            return _reject_bad_message(runtime, stage, sub.dead_letter_topic, msg, exc)
        return _run(runtime, sub, handler, msg)


def read_push(runtime: Runtime) -> PushMessage:
    """The push in the current request, after its OIDC token passed (when verification is on)."""
    if runtime.verifier is not None:
        runtime.verifier.verify(request.headers.get("Authorization"))
    return parse_push(request.get_data(cache=False), request.headers)


def _check_schema(runtime: Runtime, msg: PushMessage, expected: str) -> None:
    """Any version of the expected message type is accepted and validated against its own
    schema: during a rolling deploy, and in replays from a dead-letter queue, messages of the
    previous version are still about. Handlers read older versions (new fields are optional)."""
    declared = msg.attributes.get("schema", expected)
    if declared.rpartition(".v")[0] != expected.rpartition(".v")[0]:
        raise BadMessage(f"expected a {expected} message, got {declared}", code="wrong-schema")
    validate(runtime.settings.schemas_dir, declared, msg.data)


def _run(runtime: Runtime, sub: PushSubscription, handler: Handler, msg: PushMessage) -> Response:
    stage, job_id = sub.service, msg.data["job_id"]
    bind_fields(job_id=job_id)
    reset_retries()
    started = time.monotonic()
    try:
        start = runtime.jobs.begin_stage(job_id, stage)
        if not start.proceed:
            if not start.job:
                dead_letter(runtime, sub.dead_letter_topic, stage, msg, BadMessage("no such job", code="unknown-job"), job_id)
            elif start.job["status"] in ("completed", "failed"):
                publish_final_event(runtime, job_id, start.job["status"], {})  # heal a lost event
            log(logger, logging.INFO, f"{stage}: acknowledged without work ({start.reason})")
            return Response(status=204)
        faults.maybe_fail(f"stage.{stage}")
        result = handler(runtime, start.job, msg.data)
        fields = dict(result.job_fields)
        for topic, payload in result.publish:
            runtime.bus.publish(topic, payload, job_id=job_id)
            # Kept on the job so the stuck-job sweep can re-drive the next stage exactly.
            fields["handoff"] = {"topic": topic, "payload": payload}
        fields[f"stages.{stage}.retried_calls"] = retries_so_far()
        if result.final:
            publish_final_event(runtime, job_id, result.final, fields)
        else:
            runtime.jobs.finish_stage(job_id, stage, fields)
    except PermanentError as exc:
        fail_job(runtime, stage, sub.dead_letter_topic, msg, exc)
        return Response(status=204)
    except (TransientError, *RETRYABLE) as exc:
        reason = exc.reason if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
        return _retry_later(runtime, sub, msg, job_id, reason)
    except Exception as exc:  # a bug: retried like a transient error, so a fixed deploy can finish the job
        logger.exception("%s: unexpected error", stage)
        return _retry_later(runtime, sub, msg, job_id, f"internal error: {type(exc).__name__}: {exc}")
    log(logger, logging.INFO, f"{stage}: done", duration_ms=round((time.monotonic() - started) * 1000))
    return Response(status=204)


def _retry_later(runtime: Runtime, sub: PushSubscription, msg: PushMessage, job_id: str, reason: str) -> Response:
    """Non-2xx so Pub/Sub redelivers with the subscription's backoff; on the last attempt
    (Pub/Sub will dead-letter it next) the job is parked as dead-lettered, never left running."""
    stage = sub.service
    last = msg.delivery_attempt is not None and msg.delivery_attempt >= sub.max_delivery_attempts
    try:
        if last:
            runtime.jobs.mark_dead_lettered(job_id, stage, f"gave up after {msg.delivery_attempt} delivery attempts: {reason}")
        else:
            runtime.jobs.record_transient_error(job_id, stage, reason)
    except Exception:  # the store may be what is failing; the 503 stands either way
        logger.warning("could not record the failure on job %s", job_id)
    log(logger, logging.WARNING, f"{stage}: transient failure, Pub/Sub will {'dead-letter' if last else 'redeliver'}: {reason}")
    return problem_response(503, "Transient failure", reason, retry=True)


def _reject_bad_message(runtime: Runtime, stage: str, dlq_topic: str, msg: PushMessage, exc: BadMessage) -> Response:
    job_id = msg.data.get("job_id") if isinstance(msg.data.get("job_id"), str) else None
    if job_id and runtime.jobs.get(job_id) is not None:
        fail_job(runtime, stage, dlq_topic, msg, exc)
    else:
        log(logger, logging.ERROR, f"{stage}: bad message for no known job, dead-lettered: {exc.reason}")
        dead_letter(runtime, dlq_topic, stage, msg, exc, job_id or "")
    return Response(status=204)


def fail_job(runtime: Runtime, stage: str, dlq_topic: str, msg: PushMessage, exc: PermanentError) -> None:
    """Permanent failure: record it on the job, dead-letter the message, publish `failed`."""
    job_id = msg.data["job_id"]
    log(logger, logging.ERROR, f"{stage}: permanent failure: {exc.reason}", error_class=exc.error_class)
    error = {"stage": stage, "error_class": exc.error_class, "reason": exc.reason}
    fields = {
        "error": error,
        f"stages.{stage}.state": "failed",
        f"stages.{stage}.error": exc.reason,
    }
    dead_letter(runtime, dlq_topic, stage, msg, exc, job_id)
    publish_final_event(runtime, job_id, "failed", fields)


def dead_letter(runtime: Runtime, dlq_topic: str, stage: str, msg: PushMessage, exc, job_id: str) -> None:
    attrs = dict(msg.attributes)
    attrs.update(
        {
            "job_id": job_id,
            "stage": stage,
            "error_class": exc.error_class,
            "error_reason": exc.reason[:1024],
            "source_message_id": msg.message_id,
        }
    )
    runtime.bus.publish_raw(dlq_topic, encode(msg.data), attrs)


def publish_final_event(runtime: Runtime, job_id: str, outcome: str, fields: dict) -> None:
    """Finalise the job and publish its one public event (see JobStore.claim_final)."""
    job = runtime.jobs.claim_final(job_id, outcome, fields)
    if job is None:
        return
    event = build_event(job)
    message_id = runtime.bus.publish("media-events", event, job_id=job_id)
    runtime.jobs.mark_final_published(job_id, message_id)
    log(logger, logging.INFO, f"job {event['status']}: event published", event_id=event["id"])


def build_event(job: dict) -> dict:
    job = to_json(job)
    final = job["final_event"]
    event = {
        "id": final["id"],
        "type": f"mediarelay.job.{final['status']}",
        "job_id": job["job_id"],
        "status": final["status"],
        "occurred_at": final["claimed_at"],
        "kind": job.get("kind"),
    }
    src = job.get("source") or {}
    event["source"] = {k: src.get(k) for k in ("uri", "content_type", "size", "filename")}
    if final["status"] == "completed":
        event["analysis"] = job.get("analysis") or {}
        event["renditions"] = job.get("renditions") or []
        event["skipped"] = job.get("skipped") or []
        if job.get("storyboard"):
            event["storyboard"] = job["storyboard"]
    else:
        event["error"] = job.get("error") or {"stage": "notify", "error_class": "unknown", "reason": "unknown"}
        if job.get("analysis"):
            event["analysis"] = job["analysis"]
    return {k: v for k, v in event.items() if v is not None}
