"""`mediarelay`: the command line for upload clients, operators and the local cloud."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from .client import RESUMABLE_CHUNK_BYTES, APIError, IngestClient, print_progress
from .pipeline.topology import load_topology
from .tables import text_table


def _load_env_file(path: str | None) -> None:
    """`--env-file .local/env`: export lines written by `mediarelay local up`."""
    if not path:
        return
    for line in Path(path).read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


def cmd_local(args) -> int:
    from localcloud import demo, stack

    cfg = stack.StackConfig.from_env()
    try:
        if args.action == "up":
            stack.up(cfg, services=not args.no_services)
        elif args.action == "down":
            stack.down(cfg)
        elif args.action == "run":
            return demo.run(once=args.once)
    except stack.MissingTool as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 3
    return 0


def cmd_submit(args) -> int:
    try:
        client = IngestClient(args.url, chunk_bytes=args.chunk_bytes, direct_max_bytes=args.direct_max_bytes)
    except ValueError as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 2
    jobs = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"mediarelay: {path}: no such file; give the path of an image or video to upload", file=sys.stderr)
            return 2
        try:
            resp = client.submit(path, args.idempotency_key, progress=print_progress(path.name, args.quiet),
                                 signed=args.signed, on_duplicate=args.on_duplicate)
        except APIError as exc:
            print(f"mediarelay: {path}: rejected: {exc}", file=sys.stderr)
            return 1
        print(f"{path.name}\t{resp['job_id']}\t{resp['status']}\t{resp['status_url']}")
        jobs.append(resp["job_id"])
    if not args.wait:
        return 0
    docs = client.wait(jobs, timeout=args.timeout,
                       on_change=lambda d: print(f"{d['job_id']}: {d['status']}", file=sys.stderr))
    failed = [j for j in jobs if docs.get(j, {}).get("status") != "completed"]
    for j in jobs:
        doc = docs.get(j, {})
        reason = (doc.get("error") or {}).get("reason", "")
        print(f"{j}\t{doc.get('status', 'timed out')}\t{len(doc.get('renditions', []))} renditions\t{reason}")
    return 1 if failed else 0


def cmd_status(args) -> int:
    try:
        print(json.dumps(IngestClient(args.url).status(args.job_id), indent=2))
    except APIError as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_events(args) -> int:
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    from .common.config import get_settings

    project = get_settings().project
    subscriber = pubsub_v1.SubscriberClient()
    name = subscriber.subscription_path(project, f"mediarelay-events-tail-{uuid.uuid4().hex[:8]}")
    topic = subscriber.topic_path(project, "media-events")
    try:
        subscriber.create_subscription(request={"name": name, "topic": topic, "ack_deadline_seconds": 30,
                                                "expiration_policy": {"ttl": {"seconds": 86400}}})
    except gexc.NotFound:
        print(f"mediarelay: topic {topic} does not exist; is the local cloud up (make up)?", file=sys.stderr)
        return 1
    print(f"tailing {topic} (Ctrl-C to stop)", file=sys.stderr)
    seen, deadline = 0, time.monotonic() + args.timeout if args.timeout else None
    try:
        while (args.count is None or seen < args.count) and (deadline is None or time.monotonic() < deadline):
            resp = subscriber.pull(request={"subscription": name, "max_messages": 50}, timeout=30)
            if resp.received_messages:
                for m in resp.received_messages:
                    print(m.message.data.decode(), flush=True)
                    seen += 1
                subscriber.acknowledge(request={"subscription": name,
                                                "ack_ids": [m.ack_id for m in resp.received_messages]})
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.delete_subscription(request={"subscription": name})
    return 0


def cmd_sign_url(args) -> int:
    """Print signed derivative-image URLs of a job, one per options string (e.g. each srcset width)."""
    try:
        client = IngestClient(args.url)
        keys = client.signing_keys()
        for options in args.options:
            print(client.image_url(args.job_id, options, keys))
    except APIError as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_stats(args) -> int:
    try:
        body = IngestClient(args.url).stats(args.days, args.all)
    except APIError as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    rows = [{**r, "cost_usd": f"{r.get('cost_usd', 0):.6f}"} for r in body["days"]]
    print(_table(rows, ["day", "client_id", "uploads", "bytes", "completed", "failed", "in_progress", "cost_usd"]))
    per_client: dict[str, float] = {}
    for r in body["days"]:
        per_client[r["client_id"]] = per_client.get(r["client_id"], 0.0) + r.get("cost_usd", 0.0)
    print(f"\nestimated cost of ended jobs over {args.days} days (docs/cost.md): "
          + ", ".join(f"{c} ${v:.6f}" for c, v in sorted(per_client.items())))
    lim = body["limits"]
    print(f"\nyour quotas per day: {lim['uploads_per_day']} uploads, {lim['bytes_per_day']} bytes")
    return 0


def cmd_webhooks(args) -> int:
    try:
        body = IngestClient(args.url).webhook(args.action, getattr(args, "id", None), getattr(args, "endpoint_url", None),
                                              getattr(args, "events", None))
    except APIError as exc:
        print(f"mediarelay: {exc}", file=sys.stderr)
        return 1
    if args.json or args.action != "list":
        if args.action == "remove":
            print(f"webhook {args.id} removed")
            return 0
        print(json.dumps(body, indent=2))
        if "secret" in body:
            print("the signing secret is shown only this once: keep it with the receiver", file=sys.stderr)
        return 0
    rows = [{"id": w["id"], "url": w["url"], "events": ",".join(w["events"]),
             "health": (w.get("health") or {}).get("state", ""), "disabled": "yes" if w.get("disabled") else ""}
            for w in body["webhooks"]]
    print(_table(rows, ["id", "url", "events", "health", "disabled"]))
    return 0


def cmd_clients(args) -> int:
    """Upload clients in Firestore clients/{id} (operator credentials, like `dlq`)."""
    from .common.config import get_settings
    from .ingest.clients import ClientStore

    store = ClientStore(get_settings().project, cache_seconds=0)
    if args.action == "create":
        quotas = {k: v for k, v in (("uploads_per_day", args.uploads_per_day), ("bytes_per_day", args.bytes_per_day))
                  if v is not None}
        doc, key = store.create(args.name, operator=args.operator, quotas=quotas)
        print(f"client {doc['client_id']} ({doc['name']}) created. Its API key, shown only this once:\n{key}")
        print("use it as 'Authorization: Bearer <key>', or export MEDIARELAY_API_KEY=<key> for this CLI", file=sys.stderr)
        return 0
    if args.action == "revoke":
        if not store.revoke(args.client_id):
            print(f"mediarelay: no client {args.client_id}", file=sys.stderr)
            return 1
        print(f"client {args.client_id} revoked (its key stops working within API_KEY_CACHE_SECONDS)")
        return 0
    rows = [{"client_id": d["client_id"], "name": d["name"], "operator": "yes" if d.get("operator") else "",
             "created_at": str(d["created_at"])[:19], "revoked_at": str(d.get("revoked_at") or "")[:19]}
            for d in store.list()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, ["client_id", "name", "operator", "created_at", "revoked_at"]))
    return 0


def _duration(text: str):
    import datetime as dt

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value, unit = (float(text[:-1]), text[-1]) if text[-1] in units else (float(text), "s")
        return dt.timedelta(seconds=value * units[unit])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h or 1d") from None


def _rate(text: str) -> float:
    try:
        value = float(text.removesuffix("/s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate like 5/s") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return value


def _table(rows: list[dict], columns: list[str]) -> str:
    return text_table(columns, [[r.get(c, "") for c in columns] for r in rows], max_width=60)


def _runtime():
    from .common.config import get_settings
    from .pipeline.runtime import Runtime

    return Runtime.build(get_settings())


DLQ_COLUMNS = ["message_id", "stage", "job_id", "error_class", "replay_count", "dead_lettered_at", "reason"]


def cmd_dlq(args) -> int:
    from .ops.dlq import DeadLetters, Filters

    filters = Filters(stage=args.stage, job_id=args.job, older_than=args.older_than, error_class=args.error_class,
                      message_id=getattr(args, "message", None))
    rt = _runtime()
    dlq = DeadLetters(rt)
    if args.action in ("list", "show"):
        rows = [m.summary() | ({"attributes": m.attributes, "data": m.data.decode(errors="replace")}
                               if args.action == "show" else {}) for m in dlq.list(filters)]
        if args.action == "show" and not rows:
            print(f"mediarelay: no dead-lettered message {args.message}", file=sys.stderr)
            return 1
        if args.json or args.action == "show":
            print(json.dumps(rows, indent=2, default=str))
        else:
            print(_table(rows, DLQ_COLUMNS))
        return 0
    if args.action == "purge" and not args.yes:
        print("mediarelay: purge deletes dead-lettered messages for good; add --yes to confirm", file=sys.stderr)
        return 2
    from .ops import actions
    from .ops.audit import AuditLog

    audit, who = AuditLog(rt.settings.project), actions.cli_operator()
    if args.action == "replay":
        report = actions.replay(rt, audit, who, filters, dry_run=args.dry_run, limit=args.limit, rate=args.rate,
                                max_replays=args.max_replays, dead_letters=dlq)
    else:
        report = actions.purge(rt, audit, who, filters, dead_letters=dlq)
    if args.json:
        print(json.dumps({"matched": len(report.matched), "done": report.done, "refused": report.refused}, indent=2))
    else:
        print(_table(report.done + report.refused, ["message_id", "stage", "job_id", "replay_count", "note"]))
        verb = "purged" if args.action == "purge" else "would replay" if args.dry_run else "replayed"
        print(f"\n{len(report.matched)} matched, {len(report.done)} {verb}, {len(report.refused)} refused")
    return 1 if report.refused and not report.done else 0


def cmd_sweep(args) -> int:
    import datetime as dt

    from .ops.sweep import sweep

    rt = _runtime()
    older = args.older_than or dt.timedelta(seconds=rt.settings.stuck_after_seconds)
    rows = sweep(rt, older, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, ["job_id", "status", "updated_at", "stage", "redrives", "action", "note"]))
        print(f"\n{len(rows)} stuck for more than {older}; {'nothing changed (dry run)' if args.dry_run else 'acted on'}")
    return 0


def cmd_jobs(args) -> int:
    from .ops import actions
    from .ops.audit import AuditLog
    from .ops.jobs import NoSuchJob, delete

    rt = _runtime()
    audit, who = AuditLog(rt.settings.project), actions.cli_operator()
    try:
        if args.action == "cancel":
            row = actions.cancel(rt, audit, who, args.job_id, args.reason)
        elif args.action == "redrive":
            row = actions.redrive(rt, audit, who, args.job_id)
            row.setdefault("status", row.get("action", ""))
        else:
            row = delete(rt, args.job_id)
    except NoSuchJob:
        print(f"mediarelay: no job {args.job_id}", file=sys.stderr)
        return 1
    print(json.dumps(row) if args.json else f"{row['job_id']}: {row.get('action', row['status'])} "
                                             f"({row.get('note') or row['status']})")
    return 0


def cmd_audit(args) -> int:
    from .common.config import get_settings
    from .ops.audit import AuditLog

    rows = AuditLog(get_settings().project).recent(args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(_table([{**r, "at": str(r["at"])[:19], "target": json.dumps(r["target"]), "outcome": json.dumps(r["outcome"])}
                  for r in rows], ["at", "operator", "action", "target", "outcome"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediarelay", description=__doc__)
    p.add_argument("--env-file", help="export lines to load first, e.g. .local/env written by 'local up'")
    sub = p.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local cloud: emulators and the four services")
    local.add_argument("action", choices=["up", "down", "run"])
    local.add_argument("--no-services", action="store_true", help="up: emulators and topology only")
    local.add_argument("--once", action="store_true", help="run: exit after the table (0 if all completed)")
    local.set_defaults(fn=cmd_local)

    url_help = "ingest base URL (default $MEDIARELAY_URL or http://127.0.0.1:8080); the API key is $MEDIARELAY_API_KEY"
    s = sub.add_parser("submit", help="upload files; --wait follows them to the end")
    s.add_argument("files", nargs="+")
    s.add_argument("--wait", action="store_true")
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("--idempotency-key")
    s.add_argument("--on-duplicate", choices=("process", "skip", "reject"), default="process",
                   help="a near-duplicate of an earlier upload: process it (default), skip its renditions, or reject it")
    s.add_argument("--signed", action="store_true", default=None,
                   help="upload straight to GCS through a resumable session (automatic above --direct-max-bytes)")
    s.add_argument("--direct-max-bytes", type=int,
                   help="largest file sent through ingest itself (default $MEDIARELAY_DIRECT_MAX_BYTES or 32 MiB, "
                        "Cloud Run's body limit); bigger files go to a resumable session")
    s.add_argument("--chunk-bytes", type=int, default=RESUMABLE_CHUNK_BYTES,
                   help="resumable chunk size, a multiple of 256 KiB (default 8 MiB): at most this is sent again "
                        "after a dropped connection")
    s.add_argument("--quiet", action="store_true", help="no progress line and no resume notices on stderr "
                                                        "(progress is shown only on a terminal anyway)")
    s.add_argument("--url", help=url_help)
    s.set_defaults(fn=cmd_submit)

    st = sub.add_parser("status", help="print a job's status document")
    st.add_argument("job_id")
    st.add_argument("--url", help=url_help)
    st.set_defaults(fn=cmd_status)

    su = sub.add_parser("sign-url", help="signed derivative-image URLs of a job (/v1/img/...), one per options string")
    su.add_argument("job_id")
    su.add_argument("options", nargs="+", help="e.g. w:640/format:auto w:1280/format:auto (grammar: docs/api.md)")
    su.add_argument("--url", help=url_help)
    su.set_defaults(fn=cmd_sign_url)

    ev = sub.add_parser("events", help="tail media-events through a pull subscription of its own")
    ev.add_argument("--count", type=int, help="stop after this many events")
    ev.add_argument("--timeout", type=float, help="stop after this many seconds")
    ev.set_defaults(fn=cmd_events)
    dlq = sub.add_parser("dlq", help="dead-lettered messages: list, show, replay, purge")
    dlq_sub = dlq.add_subparsers(dest="action", required=True)
    for action, text in (("list", "list dead-lettered messages"), ("show", "one message in full"),
                         ("replay", "republish to the source topic"), ("purge", "delete for good (jobs end failed)")):
        a = dlq_sub.add_parser(action, help=text)
        if action == "show":
            a.add_argument("message", help="message id, as listed")
        a.add_argument("--stage", choices=sorted({s.service for s in load_topology().push_subscriptions.values()}))
        a.add_argument("--job", help="only this job id")
        a.add_argument("--older-than", type=_duration, help="dead-lettered at least this long ago (90s, 30m, 2h, 1d)")
        a.add_argument("--error-class", help="e.g. corrupt-media, bad-message, delivery-attempts-exhausted")
        a.add_argument("--json", action="store_true", help="JSON instead of a table")
        if action == "replay":
            a.add_argument("--dry-run", action="store_true", help="show what would be replayed")
            a.add_argument("--limit", type=int, help="replay at most N messages")
            a.add_argument("--rate", type=_rate, help="at most R messages per second, e.g. 5/s")
            a.add_argument("--max-replays", type=int, help="refuse messages replayed this often (default MAX_REPLAYS)")
        if action == "purge":
            a.add_argument("--yes", action="store_true", help="confirm")
    dlq.set_defaults(fn=cmd_dlq)

    stt = sub.add_parser("stats", help="uploads, bytes, outcomes and estimated cost per day (your own; --all: every "
                                           "client, operators)")
    stt.add_argument("--days", type=int, default=7)
    stt.add_argument("--all", action="store_true", help="every client (operator keys only)")
    stt.add_argument("--json", action="store_true")
    stt.add_argument("--url", help=url_help)
    stt.set_defaults(fn=cmd_stats)

    wh = sub.add_parser("webhooks", help="your webhook endpoints: add, list, remove, rotate (signed job events)")
    wh_sub = wh.add_subparsers(dest="action", required=True)
    add = wh_sub.add_parser("add", help="register an https endpoint; prints its signing secret once")
    add.add_argument("endpoint_url", metavar="URL")
    add.add_argument("--events", nargs="+", choices=["completed", "failed", "deleted"], help="default: all three")
    wh_sub.add_parser("list", help="your endpoints and their health")
    for action, text in (("remove", "remove an endpoint"), ("rotate", "a new secret; the old one signs on for the overlap")):
        a = wh_sub.add_parser(action, help=text)
        a.add_argument("id")
    for a in wh_sub.choices.values():
        a.add_argument("--json", action="store_true")
        a.add_argument("--url", help=url_help)
    wh.set_defaults(fn=cmd_webhooks)

    cl = sub.add_parser("clients", help="upload clients and their API keys: create, list, revoke")
    cl_sub = cl.add_subparsers(dest="action", required=True)
    create = cl_sub.add_parser("create", help="a new client; prints its API key once")
    create.add_argument("name")
    create.add_argument("--operator", action="store_true", help="may read every client's stats")
    create.add_argument("--uploads-per-day", type=int, help="override QUOTA_UPLOADS_PER_DAY for this client")
    create.add_argument("--bytes-per-day", type=int, help="override QUOTA_BYTES_PER_DAY for this client")
    cl_sub.add_parser("list", help="every client (never a key)").add_argument("--json", action="store_true")
    cl_sub.add_parser("revoke", help="stop a client's key from working").add_argument("client_id")
    cl.set_defaults(fn=cmd_clients)

    sw = sub.add_parser("sweep", help="re-drive jobs stuck in a stage past the deadline")
    sw.add_argument("--older-than", type=_duration, help="no progress for this long (default STUCK_AFTER_SECONDS)")
    sw.add_argument("--dry-run", action="store_true")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(fn=cmd_sweep)

    jobs = sub.add_parser("jobs", help="operators' actions on one job")
    jobs_sub = jobs.add_subparsers(dest="action", required=True)
    c = jobs_sub.add_parser("cancel", help="end the job failed (error class cancelled), with its one event")
    c.add_argument("job_id")
    c.add_argument("--reason", help="recorded on the job and in the failed event")
    c.add_argument("--json", action="store_true")
    r = jobs_sub.add_parser("redrive", help="republish the input of the job's current stage now (the sweep's step, "
                                            "counted against SWEEP_MAX_REDRIVES)")
    r.add_argument("job_id")
    r.add_argument("--json", action="store_true")
    d = jobs_sub.add_parser("delete", help="cancel the job if it runs, erase every object and record of it, then its "
                                           "`deleted` event (as DELETE /v1/jobs/{id})")
    d.add_argument("job_id")
    d.add_argument("--json", action="store_true")
    jobs.set_defaults(fn=cmd_jobs)

    au = sub.add_parser("audit", help="the operators' audit log, newest first (console, API and CLI actions)")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--json", action="store_true")
    au.set_defaults(fn=cmd_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _load_env_file(args.env_file)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
