"""`make run`: local cloud + services up, sample media through the chain, a table of outcomes."""
from __future__ import annotations

import datetime as dt
import signal
import time

from services.client import IngestClient
from services.pipeline.jobstate import STAGES
from services.tables import text_table

from .samples import write_samples
from .stack import StackConfig, down, up


def _ms(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    delta = dt.datetime.fromisoformat(end.replace("Z", "+00:00")) - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    return f"{delta.total_seconds() * 1000:.0f}"


def _renditions(doc: dict) -> str:
    by_preset: dict[str, list[str]] = {}
    for r in doc.get("renditions", []):
        name = r["preset"] + (f"-{r['shot']}" if "shot" in r else "")  # video stills: one per shot
        by_preset.setdefault(f"{name} {r['width']}x{r['height']}", []).append(r["format"])
    text = ", ".join(f"{k} {'/'.join(v)}" for k, v in by_preset.items())
    if doc.get("storyboard"):
        text += ", storyboard + vtt"
    video = doc.get("video")
    if video:
        rungs = "/".join(r["name"] for r in video["ladder"])
        text = f"HLS {rungs} + MP4 ({video['segments']} segment{'s' if video['segments'] > 1 else ''}), " + text
    return text or (doc.get("error") or {}).get("reason", "-")[:60]


def table(rows: list[tuple[str, dict]]) -> str:
    columns = ["file", "job id", "status", "analyze ms", "render ms", "notify ms", "total ms", "renditions"]
    lines = []
    for name, doc in rows:
        st = doc.get("stages", {})
        lines.append([
            name, doc.get("job_id", "-"), doc.get("status", "?"),
            *(_ms(st.get(s, {}).get("started_at"), st.get(s, {}).get("finished_at")) for s in STAGES),
            _ms(doc.get("created_at"), doc.get("finished_at")),
            _renditions(doc),
        ])
    return text_table(columns, lines)


def run(once: bool = False) -> int:
    cfg = StackConfig.from_env()
    started = up(cfg)
    try:
        client = IngestClient(cfg.url("ingest"), api_key=cfg.api_key)
        paths = write_samples(cfg.state_dir / "samples")
        submitted = []
        for path in paths:
            resp = client.submit(path)
            print(f"submitted {path.name}: job {resp['job_id']}")
            submitted.append((path.name, resp["job_id"]))
        docs = client.wait([j for _, j in submitted], timeout=180)
        print()
        print(table([(name, docs.get(job, {"job_id": job, "status": "timed out"})) for name, job in submitted]))
        for name, job in submitted:
            video = docs.get(job, {}).get("video")
            if video:  # private playback: a token URL; every segment is a signed read
                print(f"\n{name}: play the HLS ladder with  ffplay {client.playback(job)['playback_url']}  "
                      f"(or VLC, Safari), the MP4 at {video['mp4']['url']}")
        ok = all(docs.get(job, {}).get("status") == "completed" for _, job in submitted)
        if once:
            return 0 if ok else 1
        print(f"\ningest is serving on {cfg.url('ingest')}  (try: source {cfg.state_dir / 'env'}; "
              "mediarelay submit FILE --wait); Ctrl-C stops")
        print(f"the operators' console is on {cfg.url('iap')}: open it and sign in with any email (the local "
              "stand-in for IAP signs your identity with the local cloud's key; docs/console.md)")
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()
        return 0
    finally:
        down(cfg, only=started)
