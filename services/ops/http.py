"""`POST /ops/sweep`: the stuck-job sweep, for a scheduler (Cloud Scheduler with OIDC)."""
from __future__ import annotations

import datetime as dt

from flask import Flask, jsonify, request

from ..pipeline.auth import check_push_settings
from ..pipeline.params import int_arg
from ..pipeline.runtime import Runtime
from .sweep import sweep


def register_ops_routes(app: Flask, rt: Runtime) -> None:
    check_push_settings(rt.settings, scheduler=True)  # an empty SCHEDULER_SERVICE_ACCOUNT stops start-up
    @app.post("/ops/sweep")
    def run_sweep():
        if rt.verifier is not None:
            rt.verifier.verify(request.headers.get("Authorization"), rt.settings.scheduler_service_account)
        # At most a job's whole life (JOB_TTL_DAYS): older jobs are gone anyway.
        older = int_arg("older_than_seconds", rt.settings.stuck_after_seconds, 1, rt.settings.job_ttl_days * 86400)
        dry_run = request.args.get("dry_run", "false").lower() in ("1", "true", "yes")
        rows = sweep(rt, dt.timedelta(seconds=older), dry_run=dry_run)
        return jsonify(redriven=sum(r["action"] == "re-driven" for r in rows), jobs=rows, dry_run=dry_run)
