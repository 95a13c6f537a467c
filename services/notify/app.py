"""notify: finalises the job and publishes its one public media-events event; fans each
event out to the client's webhook endpoints and delivers them (services/webhooks/); erases
deleted jobs (services/ops/jobs.py erase) and publishes their `deleted` event."""
from __future__ import annotations

from functools import partial

from flask import Flask

from ..common.config import Settings
from ..ops import jobs as job_actions
from ..ops.http import register_ops_routes
from ..pipeline.handon import StageResult
from ..pipeline.jobstate import Job
from ..pipeline.playable import publish_playable
from ..pipeline.push import register_push, register_stage
from ..pipeline.runtime import Runtime
from ..pipeline.web import create_service_app
from ..webhooks import delivery
from ..webhooks.endpoints import EndpointStore, endpoint_store
from ..webhooks.fairness import ClientSlots


def handle(rt: Runtime, job: Job, msg: dict) -> StageResult:
    fields = {
        # The message is the complete record of the job's result: the event is built from
        # the job, so the job gets all of it (analysis too, whoever wrote it there before).
        "analysis": msg["analysis"],
        "renditions": msg["renditions"],
        "skipped": msg.get("skipped", []),
    }
    if msg.get("storyboard"):  # media-rendered v2, videos: sprite + WebVTT
        fields["storyboard"] = msg["storyboard"]
    if msg.get("video"):  # media-rendered v3: the HLS ladder and the MP4
        fields["video"] = msg["video"]
        # `playable` comes before the final event: a one-segment video renders in one push (no
        # segment 0 delivery published it), and a claim lost to a crash heals here.
        publish_playable(rt, job["job_id"], wait=True)
    return StageResult(job_fields=fields, final="completed")


def erase(rt: Runtime, sub, msg) -> None:
    """A deletion asked through DELETE /v1/jobs/{id} (the job-deletions topic)."""
    job_actions.erase(rt, msg.data["job_id"])


def create_app(settings: Settings | None = None, runtime: Runtime | None = None,
               endpoints: EndpointStore | None = None) -> Flask:
    """`endpoints` replaces the Firestore endpoint store (tests pass tests/fakes.py's)."""
    app, rt = create_service_app("notify", settings, runtime)
    register_stage(app, rt, "notify", handle)
    register_ops_routes(app, rt)  # the scheduler's sweep endpoint lives on notify
    endpoints = endpoints if endpoints is not None else endpoint_store(rt.settings)
    handlers = (("/push/events", partial(delivery.fan_out, endpoints=endpoints)),
                ("/push/webhooks", partial(delivery.deliver, endpoints=endpoints, slots=ClientSlots())),
                ("/push/deletions", erase))
    for path, handler in handlers:
        register_push(app, rt, rt.topology.subscription_for_service("notify", path), handler)
    return app
