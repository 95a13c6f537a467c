"""`POST /ops/sweep`: the stuck-job sweep, for a scheduler (Cloud Scheduler with OIDC)."""
from __future__ import annotations

import datetime as dt

from flask import Flask, jsonify, request

from ..common.errors import HTTPProblem
from ..pipeline.auth import check_push_settings
from ..pipeline.runtime import Runtime
from .sweep import sweep


def register_ops_routes(app: Flask, rt: Runtime) -> None:
    check_push_settings(rt.settings, scheduler=True)  # an empty SCHEDULER_SERVICE_ACCOUNT stops start-up
    @app.post("/ops/sweep")
    def run_sweep():
        if rt.verifier is not None:
            rt.verifier.verify(request.headers.get("Authorization"), rt.settings.scheduler_service_account)
        older = request.args.get("older_than_seconds", type=int) or rt.settings.stuck_after_seconds
        if older <= 0:
            raise HTTPProblem(400, "Bad older_than_seconds", "must be a positive number of seconds")
        dry_run = request.args.get("dry_run", "false").lower() in ("1", "true", "yes")
        rows = sweep(rt, dt.timedelta(seconds=older), dry_run=dry_run)
        return jsonify(redriven=sum(r["action"] == "re-driven" for r in rows), jobs=rows, dry_run=dry_run)
