"""ingest: accepts uploads, stores the original, creates the job, publishes media-ingested.

Two ways in: `POST /v1/uploads` (body up to MAX_UPLOAD_BYTES, Cloud Run stops HTTP/1 bodies
at 32 MiB) and, for bigger files, `POST /v1/upload-urls` -> a V4 signed PUT URL (or a GCS
resumable session) straight to GCS under incoming/, whose object-finalize notification reaches
the push endpoint below. Every client route authenticates the caller (clients.py) and sees
only the caller's jobs. Routes stay thin: the work is in uploads.py, listing.py,
public_job.py, quotas.py; the contract is openapi.json.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from flask import Flask, Response, abort, g, jsonify, redirect, request

from ..common.config import Settings
from ..common.cors import allowed_origin
from ..common.errors import HTTPProblem
from ..common.logs import bind_fields
from ..media import sandbox
from ..media.mediatypes import ALLOWED
from ..ops import jobs as job_actions
from ..pipeline.jobstate import Job
from ..pipeline.neardup import ON_DUPLICATE
from ..pipeline.params import choice_arg, int_arg
from ..pipeline.push import register_push
from ..pipeline.runtime import Runtime
from ..pipeline.web import create_service_app
from ..webhooks.api import register_webhook_routes
from . import quotas
from .body import read_body, split_upload
from .clients import Authenticator
from .cors import register_cors
from .derivative_url import PREFIX as IMG_PREFIX
from .derivatives import register_derivative_routes
from .finalized import JOB_ID, accept_finalized
from .listing import MAX_PAGE, list_jobs
from .playback import PLAY_PREFIX, job_view_playback, register_playback_routes
from .public_job import find_rendition, public_job
from .ratelimit import RateLimiter
from .uploads import accept_upload, grant_upload

logger = logging.getLogger("mediarelay.ingest")
OPENAPI_FILE = Path(__file__).with_name("openapi.json")  # the API contract, checked against these routes in tests
MAX_IDEMPOTENCY_KEY = 255
MAX_STATS_DAYS = 31
ALLOWED_TYPES = ", ".join(sorted({m.content_type for m in ALLOWED}))


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    app, rt = create_service_app("ingest", settings, runtime)
    uploads = rt.topology.subscription_for_service("ingest")
    incoming_prefix = rt.topology.topics[uploads.topic]["gcs_notification"]["object_prefix"]
    auth = Authenticator(rt.settings)
    rate = RateLimiter(rt.settings.client_rate_per_second, rt.settings.client_rate_burst)
    # Everything but these is for upload clients, who must authenticate; the push endpoint
    # has its own (OIDC) check.
    public_paths = {"/healthz", uploads.path}

    register_cors(app, rt.settings.cors_allowed_origins, rt.settings.cors_max_age_seconds)  # before authentication

    @app.before_request
    def _authenticate():
        if request.path in public_paths or request.path.startswith((PLAY_PREFIX, IMG_PREFIX)):
            return  # the push endpoint checks its OIDC token; playback routes their token; images their signature
        g.client = auth.authenticate(request.headers.get("Authorization"))
        bind_fields(client_id=g.client.client_id)
        rate.admit(g.client.client_id)

    contract = json.loads(OPENAPI_FILE.read_text())

    @app.get("/openapi.json")
    def openapi():
        return jsonify(contract)

    @app.post("/v1/uploads")
    def upload():
        body = read_body(rt.settings)
        data, filename = split_upload(rt.settings, body)
        on_duplicate = choice_arg("on_duplicate", "process", ON_DUPLICATE)
        try:
            job, replayed = accept_upload(rt, g.client, data, filename, _idempotency_key(), on_duplicate=on_duplicate)
        except HTTPProblem as exc:
            if exc.status == 409 and "job_id" in exc.extra:  # the earlier upload of these bytes: say where it is
                exc.extra["status_url"] = _status_url(rt, exc.extra["job_id"])
            raise
        return _accepted(rt, job, replayed)

    @app.post("/v1/upload-urls")
    def upload_url():
        try:
            origin = request.headers.get("Origin") if allowed_origin(rt.settings.cors_allowed_origins,
                                                                     request.headers.get("Origin")) else None
            grant = grant_upload(rt, g.client, request.get_json(silent=True), _idempotency_key(), incoming_prefix,
                                 origin=origin)
        except HTTPProblem as exc:
            if exc.status == 409:  # already uploaded: say where the job is
                exc.extra["status_url"] = _status_url(rt, exc.extra["job_id"])
            raise
        resp = jsonify({**grant, "status_url": _status_url(rt, grant["job_id"])})
        resp.status_code = 201
        return resp

    @app.get("/v1/jobs")
    def jobs():
        return jsonify(list_jobs(rt, g.client.client_id, request.args.get("status"), int_arg("limit", 20, 1, MAX_PAGE),
                                 request.args.get("cursor")))

    @app.get("/v1/stats")
    def usage_stats():
        days = int_arg("days", 7, 1, MAX_STATS_DAYS)
        everyone = request.args.get("all", "false").lower() in ("1", "true", "yes")
        if everyone and not g.client.operator:
            raise HTTPProblem(403, "Forbidden", "only operator clients see every client's statistics")
        return jsonify(days=quotas.stats(rt, g.client, days, everyone), limits=quotas.limits(rt, g.client))

    @app.get("/v1/jobs/<job_id>")
    def job_status(job_id: str):
        job = _live_job(rt, job_id)
        body = public_job(rt, job)
        play = job_view_playback(rt, job, rt.settings.public_base_url or request.host_url.rstrip("/"))
        if play is not None:  # from the `playable` event on: the ladder plays while it grows
            body["playback"] = play
        resp = jsonify(body)
        if play is not None:
            resp.headers["Cache-Control"] = "no-store"  # it carries a credential
        return resp

    @app.delete("/v1/jobs/<job_id>")
    def delete_job(job_id: str):
        """202: a running job is cancelled now (its `failed` event), its objects and records are
        erased by notify (job-deletions topic), then its `deleted` event. Asking again is harmless."""
        answer = job_actions.request_delete(rt, _own_job(rt, job_id), f"client {g.client.client_id}")
        resp = jsonify({**answer, "status_url": _status_url(rt, job_id)})
        resp.status_code = 202
        return resp

    @app.get("/v1/jobs/<job_id>/renditions/<path:name>")
    def rendition(job_id: str, name: str):
        resp = redirect(find_rendition(rt, _live_job(rt, job_id), name), code=302)
        resp.headers["Cache-Control"] = "private, no-store"  # the target is a short-lived URL
        return resp

    # GCS finalize notifications: the big-upload path (it re-checks the owner, so it reads clients)
    register_push(app, rt, uploads, functools.partial(accept_finalized, clients=auth.clients))
    register_webhook_routes(app, rt, lambda: g.client.client_id)
    register_playback_routes(app, rt, lambda job_id: _live_job(rt, job_id))
    register_derivative_routes(app, rt, lambda: g.client.client_id)
    if rt.settings.derivative_signing_keys:  # a miss renders in the bounded child: its forkserver starts now
        sandbox.preload(["pyvips", "services.render.derive"])
        sandbox.warm_up()

    return app


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise HTTPProblem(400, "Bad Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _accepted(rt: Runtime, job: Job, replayed: bool) -> Response:
    body = {"job_id": job["job_id"], "status": job["status"], "status_url": _status_url(rt, job["job_id"])}
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = body["status_url"]
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _status_url(rt: Runtime, job_id: str) -> str:
    base = rt.settings.public_base_url or request.host_url.rstrip("/")
    return f"{base}/v1/jobs/{job_id}"


def _own_job(rt: Runtime, job_id: str) -> Job:
    """The caller's job; another client's job is as unknown to it as a job that never was."""
    job = rt.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if job is None or job.get("owner") != g.client.client_id:
        raise HTTPProblem(404, "Job not found", f"no job with id {job_id[:64]!r} (a signed-URL upload becomes a job "
                                                "once GCS reports the object finalized)")
    return job


def _live_job(rt: Runtime, job_id: str) -> Job:
    """The caller's job unless it was deleted: 410, no content (its tombstone says only that it was)."""
    job = _own_job(rt, job_id)
    if job.get("deleted"):
        abort(Response(status=410))
    return job
