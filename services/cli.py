"""`mediarelay`: the command line for upload clients, operators and the local cloud."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from .client import APIError, IngestClient, print_progress


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
    client = IngestClient(args.url)
    jobs = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"mediarelay: {path}: no such file; give the path of an image or video to upload", file=sys.stderr)
            return 2
        try:
            resp = client.submit(path, args.idempotency_key, progress=print_progress(path.name), signed=args.signed)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediarelay", description=__doc__)
    p.add_argument("--env-file", help="export lines to load first, e.g. .local/env written by 'local up'")
    sub = p.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local cloud: emulators and the four services")
    local.add_argument("action", choices=["up", "down", "run"])
    local.add_argument("--no-services", action="store_true", help="up: emulators and topology only")
    local.add_argument("--once", action="store_true", help="run: exit after the table (0 if all completed)")
    local.set_defaults(fn=cmd_local)

    url_help = "ingest base URL (default $MEDIARELAY_URL or http://127.0.0.1:8080)"
    s = sub.add_parser("submit", help="upload files; --wait follows them to the end")
    s.add_argument("files", nargs="+")
    s.add_argument("--wait", action="store_true")
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("--idempotency-key")
    s.add_argument("--signed", action="store_true", default=None,
                   help="upload straight to GCS through a signed URL (automatic above 32 MiB)")
    s.add_argument("--url", help=url_help)
    s.set_defaults(fn=cmd_submit)

    st = sub.add_parser("status", help="print a job's status document")
    st.add_argument("job_id")
    st.add_argument("--url", help=url_help)
    st.set_defaults(fn=cmd_status)

    ev = sub.add_parser("events", help="tail media-events through a pull subscription of its own")
    ev.add_argument("--count", type=int, help="stop after this many events")
    ev.add_argument("--timeout", type=float, help="stop after this many seconds")
    ev.set_defaults(fn=cmd_events)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _load_env_file(args.env_file)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
