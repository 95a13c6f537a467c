"""The push endpoint of every pipeline stage: authenticate, parse, validate, run, classify.

A push runs the stage's handler (its work and outputs), then hands on (services/pipeline/handon.py:
the rest of the order inside a stage, fan-out and fan-in). Answers: 204 acknowledged (done,
duplicate, permanently failed and dead-lettered), 400 malformed push, 401/403 bad token, 503
transient (retry).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, request

from ..common.errors import BadMessage, Cancelled, MediarelayError, PermanentError, TransientError
from ..common.logs import bind_fields, log
from . import jobstate, usage
from .bus import encode
from .envelope import PushMessage, parse_push
from .handon import (
    SEGMENTS_PATH,
    Merge,
    SegmentOutputs,
    SegmentStored,
    SegmentWork,
    StageResult,
    hand_on,
    publish_final_event,
    running,
    segment_delivery,
)
from .jobstate import Job, Skip
from .jobstore import utcnow
from .payloads import SegmentMessage
from .retrying import RETRYABLE, maybe_fail, reset_retries
from .runtime import Runtime
from .schemas import validate
from .topology import PushSubscription
from .web import problem_response

logger = logging.getLogger("mediarelay.push")

Handler = Callable[[Runtime, Job, dict[str, Any]], StageResult]  # (runtime, job, message data)


def register_stage(app: Flask, runtime: Runtime, stage: str, handler: Handler) -> None:
    sub = runtime.topology.subscription_for_service(stage)
    register_job_push(app, runtime, sub, f"push_{stage}", lambda msg: _run(runtime, sub, handler, msg))


def register_job_push(app: Flask, runtime: Runtime, sub: PushSubscription, endpoint: str,
                      run: Callable[[PushMessage], Response], *, check: Callable[[PushMessage], None] | None = None) -> None:
    """A push that works on a job (a stage's input, a segment): token, envelope, schema (and
    `check`), then `run`. A message we cannot trust says nothing about its job: only the message
    goes to the dead letters; the job is left to its real message (or the sweep's bound)."""
    expected_schema = runtime.topology.schema_of_topic(sub.topic)

    @app.post(sub.path, endpoint=endpoint)
    def push() -> Response:
        msg = read_push(runtime)
        bind_fields(stage=sub.service, message_id=msg.message_id, delivery_attempt=msg.delivery_attempt)
        try:
            check_schema(runtime, msg, expected_schema)
            if check is not None:
                check(msg)
        except BadMessage as exc:
            log(logger, logging.ERROR, f"{sub.service}: bad message dead-lettered: {exc.reason}")
            dead_letter(runtime, sub.dead_letter_topic, sub.service, msg, exc, job_id=_job_id_of(msg))
            return Response(status=204)
        with usage.metering(request.content_length or 0):  # the job's cost (docs/cost.md)
            return run(msg)


PushHandler = Callable[[Runtime, PushSubscription, PushMessage], None]


def register_push(app: Flask, runtime: Runtime, sub: PushSubscription, handler: PushHandler) -> None:
    """A push endpoint that is not a job stage (webhook fan-out and delivery): the same token,
    envelope and schema rules; the handler acts; PermanentError -> dead-lettered and
    acknowledged; transient errors and bugs -> 503, Pub/Sub redelivers."""
    expected_schema = runtime.topology.schema_of_topic(sub.topic)

    @app.post(sub.path, endpoint=f"push_{sub.name}")
    def push() -> Response:
        msg = read_push(runtime)
        bind_fields(subscription=sub.name, message_id=msg.message_id, delivery_attempt=msg.delivery_attempt,
                    job_id=_job_id_of(msg))
        try:
            check_schema(runtime, msg, expected_schema)
            handler(runtime, sub, msg)
        except PermanentError as exc:
            log(logger, logging.ERROR, f"{sub.name}: dead-lettered: {exc.reason}", error_class=exc.error_class)
            dead_letter(runtime, sub.dead_letter_topic, sub.service, msg, exc, job_id=_job_id_of(msg))
        except (TransientError, *RETRYABLE) as exc:
            reason = exc.reason if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
            log(logger, logging.WARNING, f"{sub.name}: transient failure, Pub/Sub will redeliver: {reason}")
            return problem_response(503, "Transient failure", reason, retry=True)
        except Exception as exc:  # a bug: redelivered, dead-lettered after max attempts
            logger.exception("%s: unexpected error", sub.name)
            return problem_response(503, "Transient failure", f"internal error: {type(exc).__name__}", retry=True)
        return Response(status=204)


def register_segments(app: Flask, rt: Runtime, stage: str, work: SegmentWork, merge: Merge, *,
                      outputs: SegmentOutputs | None = None, stored: SegmentStored | None = None) -> None:
    sub = rt.topology.subscription_for_service(stage, SEGMENTS_PATH)

    def for_this_stage(msg: PushMessage) -> None:
        if msg.data["stage"] != stage:
            raise BadMessage(f"a segment of {msg.data['stage']} sent to {stage}", code="wrong-stage")

    def run(msg: PushMessage) -> Response:
        bind_fields(segment=msg.data["index"])
        # The schema was checked at the door (register_job_push): the data is a video-segment message.
        segment = cast(SegmentMessage, msg.data)
        return run_classified(rt, sub, msg, lambda: segment_delivery(rt, stage, work, merge, segment, outputs=outputs,
                                                                            stored=stored))

    register_job_push(app, rt, sub, f"segments_{stage}", run, check=for_this_stage)


def read_push(runtime: Runtime) -> PushMessage:
    """The push in the current request, after its OIDC token passed (when verification is on)."""
    if runtime.verifier is not None:
        runtime.verifier.verify(request.headers.get("Authorization"))
    return parse_push(request.get_data(cache=False), request.headers)


def _job_id_of(msg: PushMessage) -> str:
    job_id = msg.data.get("job_id")
    return job_id if isinstance(job_id, str) else ""


def check_schema(runtime: Runtime, msg: PushMessage, expected: str) -> None:
    """Any known version of the expected message type is accepted and validated against its
    own schema: during a rolling deploy, and in replays from a dead-letter queue, messages of
    the previous version are still about. Handlers read older versions (new fields are optional)."""
    declared = msg.attributes.get("schema", expected)
    if declared.rpartition(".v")[0] != expected.rpartition(".v")[0]:
        raise BadMessage(f"expected a {expected} message, got {declared}", code="wrong-schema")
    validate(runtime.settings.schemas_dir, declared, msg.data)


def _run(runtime: Runtime, sub: PushSubscription, handler: Handler, msg: PushMessage) -> Response:
    stage, job_id = sub.service, msg.data["job_id"]

    def body() -> None:
        # A plan sent beside the stage before's fan-out (media-analyzed v6 `planned`): render's ladder
        # begins while analysis runs (ARCHITECTURE.md, invariant 4).
        start = runtime.jobs.begin_stage(job_id, stage, beside=bool(msg.data.get("planned")))
        if not start.proceed or start.job is None:
            _without_work(runtime, sub, msg, start)
            return
        maybe_fail(f"stage.{stage}")
        with running(runtime, job_id, stage):
            result = handler(runtime, start.job, msg.data)
        hand_on(runtime, stage, job_id, result)

    return run_classified(runtime, sub, msg, body)


def run_classified(runtime: Runtime, sub: PushSubscription, msg: PushMessage, body: Callable[[], None]) -> Response:
    """Run a job's push `body` and answer as its outcome says: done or cancelled -> 204;
    permanent -> the job failed, the message dead-lettered, 204; transient or a bug -> 503."""
    stage, job_id = sub.service, msg.data["job_id"]
    bind_fields(job_id=job_id)
    reset_retries()
    started = time.monotonic()
    try:
        body()
    except Cancelled as exc:
        log(logger, logging.WARNING, f"{stage}: stopped, {exc.reason}")
        runtime.jobs.record(job_id, {f"stages.{stage}.stopped": exc.reason, f"stages.{stage}.stopped_at": utcnow()})
        return Response(status=204)
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


def _without_work(runtime: Runtime, sub: PushSubscription, msg: PushMessage, start: jobstate.StageStart) -> None:
    stage, job_id = sub.service, msg.data["job_id"]
    if start.outcome in (Skip.UNKNOWN_JOB, Skip.OUT_OF_ORDER):
        code = str(start.outcome)
        dead_letter(runtime, sub.dead_letter_topic, stage, msg, BadMessage(start.reason, code=code), job_id=job_id)
    elif start.outcome is Skip.FINAL and (status := jobstate.ended(start.job)):
        publish_final_event(runtime, job_id, status, {})  # heals an event lost to a crash
    elif start.outcome is Skip.HANDED_OFF and start.job is not None:
        handoff = start.job.get("handoff")
        if handoff is not None and handoff["topic"] in runtime.topology.services[stage]["publishes"]:
            runtime.bus.publish(handoff["topic"], handoff["payload"], job_id=job_id)
        runtime.jobs.finish_stage(job_id, stage)
    log(logger, logging.INFO, f"{stage}: acknowledged without work ({start.reason})")


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
    except Exception:  # noqa: BLE001 - the store may be what is failing; the 503 stands either way (the sweep bounds the job)
        logger.warning("could not record the failure on job %s", job_id)
    log(logger, logging.WARNING, f"{stage}: transient failure, Pub/Sub will {'dead-letter' if last else 'redeliver'}: {reason}")
    return problem_response(503, "Transient failure", reason, retry=True)


def fail_job(runtime: Runtime, stage: str, dlq_topic: str, msg: PushMessage, exc: PermanentError) -> None:
    """Permanent failure: record it on the job, dead-letter the message, publish `failed`."""
    job_id = msg.data["job_id"]
    log(logger, logging.ERROR, f"{stage}: permanent failure: {exc.reason}", error_class=exc.error_class)
    dead_letter(runtime, dlq_topic, stage, msg, exc, job_id=job_id)
    fields = jobstate.failure_fields(stage, exc.error_class, exc.reason)
    if (used := usage.snapshot()) is not None:  # what the failing delivery used, in the failed job's cost
        fields[f"stages.{stage}.usage"] = used
    publish_final_event(runtime, job_id, "failed", fields)


def dead_letter(runtime: Runtime, dlq_topic: str, stage: str, msg: PushMessage, exc: MediarelayError, *, job_id: str) -> None:
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

