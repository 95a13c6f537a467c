"""The API contract (services/ingest/openapi.json) against ingest's real routes, and
schemathesis against the live ingest under gunicorn."""
from __future__ import annotations

import json
import re

from services.common.config import REPO_ROOT

CONTRACT = json.loads((REPO_ROOT / "services" / "ingest" / "openapi.json").read_text())


def _flask_routes() -> set[tuple[str, str]]:
    from services.common.config import Settings
    from services.ingest.app import create_app

    app = create_app(Settings.from_env())  # not the process's cached settings: the test sets the environment
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/push/"):
            continue  # the push endpoint is for Pub/Sub, not for upload clients
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_route_is_documented_and_every_documented_route_exists(monkeypatch):
    monkeypatch.setenv("PUSH_VERIFICATION", "off")
    documented = {(method, path) for path, ops in CONTRACT["paths"].items() for method in ops}
    assert _flask_routes() == documented


