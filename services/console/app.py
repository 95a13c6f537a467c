"""The operators' console: server-rendered pages (Jinja), a JSON API of the same data, and the
operator actions (services/ops/actions.py: the one implementation the CLI calls too).

Every request but /healthz and /static/ carries a verified operator (auth.py); every action is
audit-logged under that identity. A state-changing request must come from the console's own
pages or from a non-browser caller (no cross-site Origin): the IAP cookie would otherwise let
any site post forms here in an operator's name."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, url_for

from ..common.config import Settings
from ..common.errors import HTTPProblem
from ..ingest.clients import ClientStore
from ..ops import actions
from ..ops.audit import AuditLog
from ..ops.dlq import DeadLetters, Report
from ..ops.jobs import NoSuchJob
from ..pipeline.jobstore import to_json, utcnow
from ..pipeline.runtime import Runtime
from ..pipeline.web import create_service_app
from . import charts, data, queries, views
from .auth import OperatorVerifier

OPEN_PATHS = ("/healthz", "/static/")


def arg(name: str) -> str | None:
    """A request parameter (form field of a POST, else query), trimmed; None when empty."""
    value = (request.form.get(name) if request.method == "POST" else None) or request.args.get(name) or ""
    return value.strip()[:200] or None


def url_with(**changes: str | None) -> str:
    """This page's URL with some parameters changed (None drops one); a new filter starts at page one."""
    args: dict[str, str | None] = {k: v for k, v in request.args.items() if k not in ("notice", "after")}
    args.update(changes)
    return f"{request.path}?{urlencode({k: v for k, v in args.items() if v})}"


def done(body: dict[str, Any], notice: str) -> Response:
    """A form post goes back to its page (`next`) with a notice; an API call gets JSON."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        back = request.form.get("next", "/")
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        sep = "&" if "?" in back else "?"
        return redirect(f"{back}{sep}{urlencode({'notice': notice})}", 303)  # type: ignore[return-value]
    return jsonify(body)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, audit: Any = None,
               dead_letters: DeadLetters | None = None) -> Flask:
    app, rt = create_service_app("console", settings, runtime)
    # Templates and static files live beside this module (the factory names the app, not its folder).
    app.root_path = str(Path(__file__).resolve().parent)
    verifier = OperatorVerifier(rt.settings)  # refuses to start without an audience
    log = audit or AuditLog(rt.settings.project)
    clients = ClientStore(rt.settings.project, cache_seconds=0)

    def dlq() -> DeadLetters:
        return dead_letters or DeadLetters(rt)

    @app.before_request
    def _operator() -> None:
        if request.path.startswith(OPEN_PATHS):
            return
        g.operator = verifier.operator(request.headers)
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
            raise HTTPProblem(403, "Forbidden", "a console action must come from the console's own pages")

    @app.context_processor
    def _common() -> dict[str, Any]:
        return {"operator": g.get("operator"), "now": utcnow(), "ago": views.ago, "notice": request.args.get("notice"),
                "url_with": url_with}

    _pages(app, rt, log, dlq, clients)
    _actions(app, rt, log, dlq)
    return app


def _pages(app: Flask, rt: Runtime, log: Any, dlq: Callable[[], DeadLetters], clients: ClientStore) -> None:
    @app.get("/")
    def index():
        return redirect(url_for("jobs_page"))

    @app.get("/jobs")
    def jobs_page():
        if q := arg("q"):
            if rt.jobs.get(q) is not None:
                return redirect(url_for("job_page", job_id=q))
            return redirect(url_for("jobs_page", notice=f"no job {q}"))
        return render_template("jobs.html", **data.jobs_data(rt, data.job_filters(arg), arg("after")), args=request.args,
                               states=queries.STATES, ranges=data.RANGES)

    @app.get("/jobs/<job_id>")
    def job_page(job_id: str):
        d = data.job_data(rt, job_id)
        return render_template("job.html", **d, waterfall=charts.waterfall(d["spans"], d["total"]))

    @app.get("/dead-letters")
    def dead_letters_page():
        return render_template("dead_letters.html", subscriptions=data.dead_letter_data(rt, dlq()),
                               audit=log.recent(30, "dlq."))

    @app.get("/dead-letters/purge")
    def purge_confirm():
        """The confirmation a purge asks for: what would go, and a button that says so."""
        f = data.dlq_filters(arg)
        return render_template("purge.html", matched=[m.summary() for m in dlq().list(f)],
                               filters={k: v for k, v in vars(f).items() if v is not None})

    @app.get("/health")
    def health_page():
        h = data.health_data(rt, clients)
        throughput = charts.stacked_bars(h["labels"], {"completed": h["completed"], "failed": h["failed"]},
                                         "jobs finished per hour")
        latency = charts.lines(h["labels"], {"p50": h["p50"], "p95": h["p95"]}, " s", "upload to completed, seconds")
        return render_template("health.html", h=h, throughput=throughput, latency=latency)

    @app.get("/audit")
    def audit_page():
        return render_template("audit.html", audit=log.recent(200))

    # The JSON API of the same data.
    @app.get("/api/jobs")
    def api_jobs():
        d = data.jobs_data(rt, data.job_filters(arg), arg("after"))
        return jsonify(jobs=[to_json(r) for r in d["jobs"]], counts=d["counts"], next=d["next"])

    @app.get("/api/jobs/<job_id>")
    def api_job(job_id: str):
        d = data.job_data(rt, job_id)
        return jsonify(job=d["job"], playback_url=d["playback_url"], segments=d["segments"],
                       waterfall=[vars(s) for s in d["spans"]])

    @app.get("/api/dead-letters")
    def api_dead_letters():
        return jsonify(subscriptions=[to_json(s) for s in data.dead_letter_data(rt, dlq())])

    @app.get("/api/health")
    def api_health():
        return jsonify(to_json(data.health_data(rt, clients)))

    @app.get("/api/audit")
    def api_audit():
        limit = arg("limit") or "50"
        return jsonify(entries=[to_json(e) for e in log.recent(min(int(limit) if limit.isdigit() else 50, 500))])


def _report(report: Report) -> dict[str, Any]:
    return {"matched": len(report.matched), "done": report.done, "refused": report.refused}


def _actions(app: Flask, rt: Runtime, log: Any, dlq: Callable[[], DeadLetters]) -> None:
    """Each one audit-logged by services/ops/actions.py."""

    def named_filters():
        f = data.dlq_filters(arg)
        if not (f.message_id or f.subscription or f.job_id or f.stage or arg("all") == "yes"):
            raise data.bad("name the messages (message_id, subscription, job, stage) or send all=yes")
        return f

    @app.post("/api/dead-letters/replay")
    def api_replay():
        report = actions.replay(rt, log, g.operator, named_filters(), dead_letters=dlq())
        refused = f", refused {len(report.refused)}: " + "; ".join(r["note"] for r in report.refused) if report.refused else ""
        return done(_report(report), f"replayed {len(report.done)}{refused}")

    @app.post("/api/dead-letters/purge")
    def api_purge():
        if arg("confirm") != "yes":
            raise HTTPProblem(400, "Confirmation required", "a purge deletes messages for good and ends their jobs "
                                                            "failed: send confirm=yes")
        report = actions.purge(rt, log, g.operator, named_filters(), dead_letters=dlq())
        return done(_report(report), f"purged {len(report.done)}")

    @app.post("/api/jobs/<job_id>/redrive")
    def api_redrive(job_id: str):
        row = actions.redrive(rt, log, g.operator, job_id)
        return done(row, f"{job_id}: {row['action']}")

    @app.post("/api/jobs/<job_id>/cancel")
    def api_cancel(job_id: str):
        try:
            row = actions.cancel(rt, log, g.operator, job_id, arg("reason"))
        except NoSuchJob:
            abort(404)
        return done(row, f"{job_id}: {row['action']}")
