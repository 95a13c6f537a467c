"""`/v1/webhooks` on ingest: a client's endpoints. The URL is stored normalised (what a browser
would send: IDNA host, percent-encoded path and query) and shown so in the 201; one that cannot
be, or that the SSRF guard refuses, is a 422 saying why. The signing secret is in the answer
that creates or rotates it, once; listing never shows one."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

from ..common.errors import HTTPProblem
from ..pipeline.runtime import Runtime
from . import ssrf
from .endpoints import EVENT_TYPES, EndpointStore, endpoint_store, public_view


def register_webhook_routes(app: Flask, rt: Runtime, client_of: Callable[[], str],
                            endpoints: EndpointStore | None = None) -> None:
    """`client_of()` is the authenticated client of the current request (ingest's auth);
    `endpoints` replaces the Firestore store (tests pass tests/fakes.py's)."""
    endpoints = endpoints if endpoints is not None else endpoint_store(rt.settings)

    @app.post("/v1/webhooks")
    def add_webhook():
        client = client_of()
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise HTTPProblem(400, "Bad request", 'send JSON {"url": "https://…", "events": ["completed", "failed"]}')
        events = body.get("events", list(EVENT_TYPES))
        if not isinstance(events, list) or not events or not all(e in EVENT_TYPES for e in events):
            raise HTTPProblem(422, "Bad events", f"events must be a non-empty list of {', '.join(EVENT_TYPES)}")
        url = body["url"].strip()
        if len(url) > 2048:
            raise HTTPProblem(422, "Bad URL", "the URL is longer than 2048 characters")
        try:  # normalised as a browser would (urls.py), then the SSRF guard; both again before every delivery
            url = ssrf.check(url, rt.settings.webhook_allow_hosts).url
        except ssrf.Refused as exc:
            raise HTTPProblem(422, "Webhook URL refused", exc.reason) from None
        if len(url) > 2048:
            raise HTTPProblem(422, "Bad URL", "the URL, percent-encoded, is longer than 2048 characters")
        cap = rt.settings.webhook_max_endpoints
        if len(endpoints.for_client(client)) >= cap:
            raise HTTPProblem(409, "Too many endpoints", f"a client has at most {cap} endpoints (WEBHOOK_MAX_ENDPOINTS)")
        doc, secret = endpoints.create(client, url, sorted(set(events)))
        resp = jsonify({**public_view(doc), "secret": secret})
        resp.status_code = 201
        return resp

    @app.get("/v1/webhooks")
    def list_webhooks():
        return jsonify(webhooks=[public_view(d) for d in endpoints.for_client(client_of())])

    def _owned(endpoint_id: str) -> dict:
        doc = endpoints.owned(client_of(), endpoint_id)
        if doc is None:
            raise HTTPProblem(404, "Webhook not found", f"no webhook endpoint {endpoint_id!r}")
        return doc

    @app.delete("/v1/webhooks/<endpoint_id>")
    def remove_webhook(endpoint_id: str):
        endpoints.delete(_owned(endpoint_id)["id"])
        return Response(status=204)

    @app.post("/v1/webhooks/<endpoint_id>/rotate")
    def rotate_webhook(endpoint_id: str):
        doc = _owned(endpoint_id)
        overlap = dt.timedelta(seconds=rt.settings.webhook_secret_overlap_seconds)
        secret = endpoints.rotate(doc["id"], overlap)
        return jsonify({**public_view(endpoints.get(doc["id"]) or doc), "secret": secret,
                        "previous_secret_valid_for_seconds": int(overlap.total_seconds())})
