"""The Flask app every service starts from: logging, trace binding, problem errors, /healthz."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, jsonify, request
from werkzeug.exceptions import HTTPException

from ..common.config import Settings, get_settings
from ..common.errors import HTTPProblem, TransientError
from ..common.logs import bind_fields, bind_trace, clear_context, configure_logging, parse_trace
from .auth import check_push_settings
from .runtime import Runtime

logger = logging.getLogger("mediarelay.web")


def create_service_app(service: str, settings: Settings | None = None,
                       runtime: Runtime | None = None) -> tuple[Flask, Runtime]:
    """`runtime` replaces the Google clients (tests pass in-memory ones); else built from `settings`."""
    settings = runtime.settings if runtime else settings or get_settings()
    configure_logging(settings.project, service, settings.log_level)
    app = Flask(f"mediarelay.{service}")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    runtime = runtime or Runtime.build(settings)
    push_verification = check_push_settings(settings)  # refuses to start when off by omission
    if push_verification == "off":
        logger.warning("push verification is OFF (PUSH_VERIFICATION=off): push endpoints accept unauthenticated requests")
    app.extensions["mediarelay"] = runtime

    @app.before_request
    def _bind_request_context() -> None:
        clear_context()
        bind_trace(parse_trace(request.headers.get("traceparent"), request.headers.get("X-Cloud-Trace-Context")))
        bind_fields(http_method=request.method, http_path=request.path)

    @app.get("/healthz")
    def healthz() -> Response:
        body = {"status": "ok", "service": service}
        if push_verification == "off":
            body["push_verification"] = "off"
        return jsonify(body)

    @app.errorhandler(HTTPProblem)
    def _problem(exc: HTTPProblem) -> Response:
        resp = problem_response(exc.status, exc.title, exc.detail, **exc.extra)
        resp.headers.update(exc.headers)
        return resp

    @app.errorhandler(TransientError)
    def _transient(exc: TransientError) -> Response:
        logger.warning("transient failure: %s", exc.reason)
        resp = problem_response(503, "Service Unavailable", exc.reason)
        resp.headers["Retry-After"] = "2"
        return resp

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        detail = exc.description or ""
        if exc.code == 413:
            detail = f"request body exceeds the limit of {settings.max_upload_bytes} bytes (MAX_UPLOAD_BYTES)"
        return problem_response(exc.code or 500, exc.name, detail)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error: %s", exc)
        return problem_response(500, "Internal Server Error", "unexpected error; it has been logged")

    return app, runtime


def problem_response(status: int, title: str, detail: str = "", **extra: Any) -> Response:
    """An error as application/problem+json (RFC 9457)."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")
