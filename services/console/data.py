"""The data behind each page and its API twin, read from Firestore and Pub/Sub (queries.py, ops)."""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ..common.errors import HTTPProblem
from ..ingest import playback_token
from ..ingest.clients import Client, ClientStore
from ..ingest.playback import PLAY_PREFIX
from ..ingest.public_job import public_job
from ..ingest.quotas import stats as usage_stats
from ..ops.dlq import DeadLetters, Filters
from ..ops.sweep import SWEPT_STATUSES
from ..pipeline.jobstore import to_json, utcnow
from ..pipeline.runtime import Runtime
from . import queries, views

RANGES = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(days=1), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
Arg = Callable[[str], "str | None"]


def bad(detail: str) -> HTTPProblem:
    return HTTPProblem(400, "Bad Request", detail)


def job_filters(arg: Arg) -> queries.JobFilters:
    state, kind = arg("state"), arg("kind")
    if state and state not in queries.STATES:
        raise bad(f"state must be one of: {', '.join(queries.STATES)}")
    if kind and kind not in queries.KINDS:
        raise bad("kind must be image or video")
    since = None
    if (rng := arg("range")) and rng != "all":
        if rng not in RANGES:
            raise bad(f"range must be one of: {', '.join(RANGES)}, all")
        since = utcnow() - RANGES[rng]
    return queries.JobFilters(state=state, client=arg("client"), kind=kind, error_class=arg("error_class"), since=since)


def dlq_filters(arg: Arg) -> Filters:
    return Filters(stage=arg("stage"), job_id=arg("job"), error_class=arg("error_class"), message_id=arg("message_id"),
                   subscription=arg("subscription"))


def jobs_data(rt: Runtime, f: queries.JobFilters, after: str | None) -> dict[str, Any]:
    page = queries.list_jobs(rt, f, rt.settings.console_page_size, after)
    return {"filters": f, "jobs": [views.job_row(j) for j in page], "counts": queries.counts_per_state(rt, f),
            "next": page[-1]["job_id"] if len(page) == rt.settings.console_page_size else None}


def playback_url(rt: Runtime, job_id: str) -> str:
    """A playback token minted as ingest mints them; the page plays ingest's playlists (CORS_ALLOWED_ORIGINS)."""
    s = rt.settings
    token, _ = playback_token.mint(s.playback_token_keys, job_id, int(time.time()), s.playback_token_ttl_seconds)
    return f"{s.public_base_url}{PLAY_PREFIX}{token}/master.m3u8"


def job_data(rt: Runtime, job_id: str) -> dict[str, Any]:
    job = rt.jobs.get(job_id)
    if job is None:
        raise HTTPProblem(404, "Not Found", f"no job {job_id}")
    segments = queries.segment_records(rt, job_id)
    spans, total = views.waterfall_spans(job, segments)
    shown = public_job(rt, job, with_urls=not job.get("deleted"))
    playable = job.get("video") and rt.settings.playback_token_keys and rt.settings.public_base_url
    play = playback_url(rt, job_id) if playable else None
    return {"job": to_json(job), "shown": shown, "spans": spans, "total": total, "playback_url": play,
            "segments": [to_json(s) for s in segments], "cost": job.get("cost")}


def dead_letter_data(rt: Runtime, dlq: DeadLetters) -> list[dict[str, Any]]:
    return views.dead_letter_overview(rt.topology, dlq.list(Filters()), utcnow())


def client_usage(rt: Runtime, clients: ClientStore) -> list[dict[str, Any]]:
    """Today's uploads and bytes per client against its quotas (the counters ingest keeps)."""
    usage = {r["client_id"]: r for r in usage_stats(rt, Client("", ""), 1, True)}
    rows = []
    for c in clients.list():
        q = c.get("quotas") or {}
        used = usage.get(c["client_id"], {})
        rows.append({"client_id": c["client_id"], "name": c["name"], "revoked": bool(c.get("revoked_at")),
                     **{k: used.get(k, 0) for k in ("uploads", "bytes", "completed", "failed")},
                     "uploads_quota": int(q.get("uploads_per_day", rt.settings.quota_uploads_per_day)),
                     "bytes_quota": int(q.get("bytes_per_day", rt.settings.quota_bytes_per_day))})
    return rows


def health_data(rt: Runtime, clients: ClientStore) -> dict[str, Any]:
    now = utcnow()
    h = views.health(queries.finished_since(rt, now - dt.timedelta(hours=views.HOURS), rt.settings.console_health_jobs), now)
    stuck = rt.jobs.find_stuck(SWEPT_STATUSES, now - dt.timedelta(seconds=rt.settings.stuck_after_seconds), 100)
    return {**h, "stuck": [views.job_row(j) | {"updated_at": j["updated_at"]} for j in stuck],
            "clients": client_usage(rt, clients), "stuck_after": rt.settings.stuck_after_seconds}
