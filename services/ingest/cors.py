"""CORS for the routes a web page calls directly: playback (the token routes and minting) and
upload URLs. Allowed origins: CORS_ALLOWED_ORIGINS (empty in production until set; the local
cloud sets `*`). Preflights are answered before authentication, since a browser sends them
without the Authorization header. The buckets' own rules (signed uploads, HLS segments) are
declared in terraform/storage.tf."""
from __future__ import annotations

import re

from flask import Flask, Response, request

from ..common.cors import allowed_origin
from .playback import PLAY_PREFIX

CORS_PATHS = re.compile(rf"^({re.escape(PLAY_PREFIX)}.+|/v1/jobs/[^/]+/playback|/v1/upload-urls)$")
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSE_HEADERS = "Location, Retry-After, Idempotent-Replayed, Content-Length"


def register_cors(app: Flask, origins: tuple[str, ...], max_age_seconds: int) -> None:
    """Call before any other before_request hook (ingest's client authentication)."""

    def _headers(resp: Response, origin: str) -> Response:
        resp.headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            resp.headers.add("Vary", "Origin")  # a cache must not hand one origin's answer to another
        return resp

    @app.before_request
    def _preflight():
        if request.method != "OPTIONS" or not CORS_PATHS.match(request.path):
            return None
        resp = Response(status=204)
        origin = allowed_origin(origins, request.headers.get("Origin"))
        if origin is None:
            return resp  # no CORS headers: the browser refuses the real request
        resp.headers["Access-Control-Allow-Methods"] = "GET, HEAD" if request.path.startswith(PLAY_PREFIX) else "POST"
        resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        resp.headers["Access-Control-Max-Age"] = str(max_age_seconds)
        return _headers(resp, origin)

    @app.after_request
    def _actual(resp: Response) -> Response:
        if request.method != "OPTIONS" and CORS_PATHS.match(request.path):
            origin = allowed_origin(origins, request.headers.get("Origin"))
            if origin is not None:
                resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                _headers(resp, origin)
        return resp
