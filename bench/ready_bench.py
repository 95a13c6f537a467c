"""Time to playable and time to ready of a 10-minute 1080p video: the pieces measured here, the
whole modelled on Cloud Run at 50 instances (issue 23 item 5 and its bench).

Measured on this machine:
1. A 1080p span's work, each in a child pinned to one core (a Cloud Run segment slot: analyze
   and render run 2 vCPU and 2 requests an instance, terraform/): render (encode_span, every
   rung) and analysis (analyze_span, with its overlap) of a SHORT_SPAN_S and a LONG_SPAN_S
   span, so a span of S seconds costs fixed + per_second x S; the MP4 remux of the top rung.
2. Pub/Sub publish -> push received on the official emulator (segments_bench.pubsub_hop).
3. Firestore on the official emulator, through JobStore: a segment record (create-if-absent),
   the stage's count aggregation, a compare-and-set on the job (read + conditional write: the
   `playable` claim, a hand-off).

Modelled (critical path, seconds from the upload's media-ingested to the event): `playable`
= the first span of every rung stored, its record written and the playable claim taken (the
playback route serves from then; the event is one hop later); `ready` = the job completed.
Two orders of the chain, so the figure is right whichever lands: "after" (render fans out once
analysis has fanned in, as today) and "beside" (the first stage plans the spans once and fans
out analysis and the ladder together; render's fan-in joins the analysis). Each stage's
service has INSTANCES instances of 2 slots; segments beyond the slots wait for a wave.
"Here" is the same model with this machine's concurrency: one instance of 2 slots.
Stated, not measured: Cloud Run's cold start share, GCS throughput and first-byte latency.
4. End to end here (READY_E2E_SECONDS of the same 1080p clip, 0 skips it): the whole local
   cloud (services under gunicorn, emulators), the clip uploaded, `timings.playable_at` and
   `ready_at` read from the job against its `created_at`, beside the model's figure for that
   clip at this machine's concurrency (the model's check).

    PYTHONPATH=. python -m bench ready          # READY_E2E_SECONDS=60
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL_SECONDS = 600
INSTANCES = 50
SLOTS_PER_INSTANCE = 2  # terraform: analyze and render with cpu = 2, concurrency = 2
SEGMENT_CHOICES = (6, 10, 15, 20, 30)  # VIDEO_SEGMENT_SECONDS to model
DEFAULT_SEGMENT_S = 15  # VIDEO_SEGMENT_SECONDS' default
FIRST_S = 2  # VIDEO_FIRST_SEGMENT_SECONDS' default: the short first span that sets `playable`
SHORT_SPAN_S, LONG_SPAN_S = 6, 24
CLIP_SECONDS = SHORT_SPAN_S + LONG_SPAN_S
PLAYABLE_GOAL_S, READY_GOAL_S = 15, 60
# Stated production figures (not measured here):
COLD_S = 2.0 + 1.5  # Cloud Run's share of a cold start + our imports (segments_bench measures ~1.5 s)
GCS_FIRST_BYTE_S = 0.05  # one GCS request's latency in-region
GCS_DOWN_MBPS, GCS_UP_MBPS = 100.0, 50.0  # one stream, MB/s
PROJECT = "mediarelay-ready-bench"
E2E_SECONDS = int(os.environ.get("READY_E2E_SECONDS", "60"))
E2E_SEGMENT_S = 10  # VIDEO_SEGMENT_SECONDS of the end-to-end run: several spans, so `playable` comes early


def measure_spans() -> dict:
    """Render and analysis of a short and a long 1080p span, one core each, in bench children."""
    from bench.segments_bench import HLS_SEGMENT_S, run_workers, source_clip
    from services.analyze.segmented import DEFAULT_OVERLAP_S
    from services.media.video import VideoFile
    from services.render import ladder as ladder_mod
    from services.render.presets import load

    clip = source_clip(CLIP_SECONDS)
    with VideoFile(clip) as v:
        w, h = v.display_size()
    rungs = [r.as_dict() for r in ladder_mod.choose_rungs(load().ladder, w, h)]
    spans = [(0, 0.0, float(SHORT_SPAN_S)), (1, float(SHORT_SPAN_S), float(CLIP_SECONDS))]
    core = max(os.sched_getaffinity(0))
    out = Path(tempfile.mkdtemp(prefix="ready-bench-"))
    [render] = run_workers([{"task": "encode", "path": str(clip), "rungs": rungs, "hls_s": HLS_SEGMENT_S, "core": core,
                             "spans": spans, "out": str(out)}], "ready-render")
    [analysis] = run_workers([{"task": "analyze", "path": str(clip), "core": core, "spans": spans,
                               "overlap_s": DEFAULT_OVERLAP_S}], "ready-analyze")
    top = rungs[0]["name"]
    ts = [out / f"span-{s['index']:03d}" / seg["file"] for s in render["spans"] for seg in s["result"]["rungs"][top]["segments"]]
    t = time.perf_counter()
    ladder_mod.remux_mp4([str(p) for p in ts], str(out / "out.mp4"))
    remux_s = time.perf_counter() - t
    out_bytes = sum(p.stat().st_size for p in out.rglob("*.ts"))

    def fit(rows: list[dict]) -> tuple[float, float]:
        (a, b) = rows
        per_s = (b["wall"] - a["wall"]) / ((b["end_s"] - b["start_s"]) - (a["end_s"] - a["start_s"]))
        return max(0.0, a["wall"] - per_s * (a["end_s"] - a["start_s"])), per_s

    return {"size": f"{w}x{h}", "rungs": [r["name"] for r in rungs], "render": fit(render["spans"]),
            "analyze": fit(analysis["spans"]), "render_rows": render["spans"], "analyze_rows": analysis["spans"],
            "remux_per_s": remux_s / CLIP_SECONDS, "out_bytes_per_s": out_bytes / CLIP_SECONDS,
            "top_bytes_per_s": sum(p.stat().st_size for p in ts) / CLIP_SECONDS,
            "src_bytes_per_s": clip.stat().st_size / CLIP_SECONDS}


def measure_firestore(samples: int = 30) -> dict:
    """Median and p90 of a segment record's create, the count aggregation and a job compare-and-set."""
    from localcloud.processes import ProcessManager
    from localcloud.stack import DEFAULT_PORTS, StackConfig, _environ, emulator_procs
    from localcloud.taps import free_port
    from services.pipeline.jobstore import JobStore, utcnow

    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(state_dir=Path(tmp), project=PROJECT, ports={n: free_port() for n in DEFAULT_PORTS})
        pm = ProcessManager(cfg.state_dir)
        [proc] = [p for p in emulator_procs(cfg) if p.name == "firestore"]
        try:
            pm.start(proc)
            pm.wait_healthy(proc)
            with _environ({"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{cfg.ports['firestore']}"}):
                jobs = JobStore(PROJECT)
                jobs.create("bench-job-0001", {"kind": "video"})
                jobs.record_segment("bench-job-0001", "render", 9999)  # warm: connections, the collection
                timed: dict[str, list[float]] = {"segment record (create-if-absent)": [], "count of the stage's records": [],
                                                 "compare-and-set on the job (read + write)": []}
                for i in range(samples):
                    for name, call in (
                            ("segment record (create-if-absent)", lambda i=i: jobs.record_segment("bench-job-0001", "render", i)),
                            ("count of the stage's records", lambda: jobs._count_segments("bench-job-0001", "render")),
                            ("compare-and-set on the job (read + write)",
                             lambda: jobs._decide("bench-job-0001", lambda job: (None, {"updated_at": utcnow()})))):
                        t = time.perf_counter()
                        call()
                        timed[name].append(time.perf_counter() - t)
        finally:
            pm.stop(proc.name)
    return {k: {"median_s": statistics.median(v), "p90_s": sorted(v)[int(0.9 * (len(v) - 1))]} for k, v in timed.items()}


def measure_end_to_end(seconds: int) -> dict:
    """The clip through a whole local cloud: seconds from the job's creation to playable and to ready."""
    import datetime as dt

    import requests

    from bench.segments_bench import source_clip
    from localcloud.stack import private_stack
    from services.client import IngestClient

    clip = source_clip(seconds)
    # Two requests at a time per service: this machine's 2 cores, as a Cloud Run instance of 2 vCPU
    # takes 2 (with the stack's default 8 threads, every span would share the cores and finish last).
    env = {"VIDEO_SEGMENT_SECONDS": str(E2E_SEGMENT_S), "LOG_LEVEL": "WARNING", "GUNICORN_THREADS": str(SLOTS_PER_INSTANCE)}
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-ready-e2e", env) as cfg:
        ingest = cfg.url("ingest")
        job_id = IngestClient(ingest, api_key=cfg.api_key).submit(clip, signed=True)["job_id"]
        headers, seen_playback, view = {"Authorization": f"Bearer {cfg.api_key}"}, None, {}
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            view = requests.get(f"{ingest}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
            if seen_playback is None and view.get("playback"):
                seen_playback = view["status"]
            if view["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
    if view.get("status") != "completed":
        raise RuntimeError(f"the end-to-end job did not complete: {view.get('status')} {view.get('error')}")
    at = {k: dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in
          {"created": view["created_at"], **view["timings"]}.items()}
    return {"seconds": seconds, "segments": math.ceil(seconds / E2E_SEGMENT_S),
            "playable": (at["playable_at"] - at["created"]).total_seconds(),
            "ready": (at["ready_at"] - at["created"]).total_seconds(), "view_status_at_playable": seen_playback}


def model(m: dict, segment_s: float, slots: int, order: str, seconds: float = MODEL_SECONDS, first_s: float = FIRST_S) -> dict:
    """(playable, ready, phases) in seconds for `seconds` of 1080p; `slots` segments at once per stage;
    a first span of `first_s` (0: as long as the others)."""
    first_s = first_s if 0 < first_s < segment_s else segment_s
    n = 1 + math.ceil((seconds - first_s) / segment_s)
    waves = math.ceil(n / slots)
    hop, rec, count, cas = m["hop_s"], m["fs_record_s"], m["fs_count_s"], m["fs_cas_s"]
    span_src = m["src_bytes_per_s"] * segment_s / (GCS_DOWN_MBPS * 1e6) + GCS_FIRST_BYTE_S  # a ranged read of its span
    a0, a1 = m["analyze"]
    r0, r1 = m["render"]
    analyze_seg = span_src + a0 + a1 * segment_s
    def render_of(span_s: float) -> float:
        return span_src + r0 + r1 * span_s + m["out_bytes_per_s"] * span_s / (GCS_UP_MBPS * 1e6) + GCS_FIRST_BYTE_S

    render_seg, render_first = render_of(segment_s), render_of(first_s)
    done_seg = rec + count  # its record, then the count that may find the set whole
    fan_in = done_seg + rec + cas  # the claim record, then the hand-off (compare-and-set)
    plan = hop + COLD_S + 2 * GCS_FIRST_BYTE_S + cas  # media-ingested, the packet index read, the fan-out recorded
    top = m["top_bytes_per_s"] * seconds
    render_fan_in = (fan_in + top / (GCS_DOWN_MBPS * 1e6) + m["remux_per_s"] * seconds + top / (GCS_UP_MBPS * 1e6)
                     + 2 * GCS_FIRST_BYTE_S)
    notify = hop + cas + cas + hop  # media-rendered; the playable check and the final claim; media-events
    playable_after_span0 = rec + cas  # segment 0's record, then the playable claim (the route serves from here)
    analysis_done = plan + hop + COLD_S + waves * analyze_seg + fan_in + hop  # ... media-analyzed published
    if order == "after":
        render_start = analysis_done + cas + hop + COLD_S  # render's fan-out, the segment pushes
        playable = render_start + render_first + playable_after_span0
        ready = render_start + waves * render_seg + done_seg + render_fan_in + notify
    else:  # beside: the ladder fans out with the analysis, render's fan-in joins the analysis
        render_start = plan + hop + COLD_S
        playable = render_start + render_first + playable_after_span0
        ready = max(render_start + waves * render_seg + done_seg, analysis_done) + render_fan_in + notify
    return {"segments": n, "waves": waves, "playable": playable, "ready": ready, "render_seg": render_seg,
            "analyze_seg": analyze_seg, "analysis_done": analysis_done}


def main() -> None:
    from bench.analyze_bench import table
    from bench.segments_bench import pubsub_hop

    t0 = time.perf_counter()
    spans = measure_spans()
    try:
        hop = pubsub_hop()
    except Exception as exc:  # noqa: BLE001 - the bench goes on with the stated production figure
        hop = {"error": f"{type(exc).__name__}: {exc}"}
    fs = measure_firestore()
    m = {**spans, "hop_s": hop.get("median_s", 0.1), "fs_record_s": fs["segment record (create-if-absent)"]["median_s"],
         "fs_count_s": fs["count of the stage's records"]["median_s"],
         "fs_cas_s": fs["compare-and-set on the job (read + write)"]["median_s"]}

    print(f"Measured here ({spans['size']}, rungs {', '.join(spans['rungs'])}; one core per span, the machine is shared):")
    rows = [[kind, f"{r['end_s'] - r['start_s']:g} s", f"{r['wall']:.1f}", f"{r['cpu']:.1f}"]
            for kind, key in (("render (every rung)", "render_rows"), ("analysis (+ overlap)", "analyze_rows"))
            for r in spans[key]]
    print(table(rows, ["span work", "span", "wall s", "CPU s"]))
    print(f"fitted: render {spans['render'][0]:.2f} s + {spans['render'][1]:.2f} s per s of 1080p; analysis "
          f"{spans['analyze'][0]:.2f} s + {spans['analyze'][1]:.3f} s per s; MP4 remux {spans['remux_per_s'] * 1000:.1f} ms "
          f"per s; ladder {8 * spans['out_bytes_per_s'] / 1e6:.1f} Mbit/s, "
          f"source {8 * spans['src_bytes_per_s'] / 1e6:.1f} Mbit/s")
    lat = [["Pub/Sub publish -> push received (emulator)",
            *((f"{hop['median_s'] * 1000:.0f}", f"{hop['p90_s'] * 1000:.0f}") if "median_s" in hop else (hop["error"], "-"))]]
    lat += [[f"Firestore: {k} (emulator)", f"{v['median_s'] * 1000:.1f}", f"{v['p90_s'] * 1000:.1f}"] for k, v in fs.items()]
    print(table(lat, ["latency", "median ms", "p90 ms"]))

    print(f"\nModel: {MODEL_SECONDS // 60} min of 1080p, seconds from media-ingested; playable = segment 0's rungs stored "
          f"and claimed (a first segment of {FIRST_S:g} s), ready = completed. Stated: cold start {COLD_S:g} s per "
          f"fan-out's first wave, GCS "
          f"{GCS_DOWN_MBPS:g}/{GCS_UP_MBPS:g} MB/s, {GCS_FIRST_BYTE_S * 1000:.0f} ms a request.")
    rows = []
    for order in ("after", "beside"):
        for seg in SEGMENT_CHOICES:
            here, cloud = model(m, seg, SLOTS_PER_INSTANCE, order), model(m, seg, INSTANCES * SLOTS_PER_INSTANCE, order)
            rows.append([f"render {order} analysis", f"{seg:g} s" + (" (default)" if seg == DEFAULT_SEGMENT_S else ""),
                         str(cloud["segments"]), f"{here['playable']:.0f} / {here['ready']:.0f}",
                         f"{cloud['playable']:.1f}", f"{cloud['ready']:.1f} ({cloud['waves']} wave)"])
    print(table(rows, ["order", "segment", "segments", "here (1 instance, 2 slots): playable / ready s",
                       f"{INSTANCES} instances: playable s", f"{INSTANCES} instances: ready s"]))
    print("\nGoals at 50 instances (playable <= 15 s, ready <= 60 s):")
    rows = []
    for order in ("after", "beside"):
        for seg in (DEFAULT_SEGMENT_S, min(SEGMENT_CHOICES, key=lambda s: model(m, s, 100, order)["ready"])):
            c = model(m, seg, INSTANCES * SLOTS_PER_INSTANCE, order)
            rows.append([order, f"{seg:g} s", f"{c['playable']:.1f}", f"{c['playable'] - PLAYABLE_GOAL_S:+.1f}",
                         "met" if c["playable"] <= PLAYABLE_GOAL_S else "MISSED", f"{c['ready']:.1f}",
                         f"{c['ready'] - READY_GOAL_S:+.1f}", "met" if c["ready"] <= READY_GOAL_S else "MISSED"])
    print(table(rows, ["render", "segment", "playable s", "vs 15 s", "", "ready s", "vs 60 s", ""]))
    if E2E_SECONDS:
        e2e = measure_end_to_end(E2E_SECONDS)
        here = model(m, E2E_SEGMENT_S, SLOTS_PER_INSTANCE, "beside", seconds=E2E_SECONDS)
        print(f"\nEnd to end here: {E2E_SECONDS} s of 1080p in {e2e['segments']} spans of {E2E_SEGMENT_S} s through the "
              f"local cloud (render after analysis, 2 requests at a time per service on 2 shared cores); from the "
              f"job's creation")
        print(table([["measured (job timings)", f"{e2e['playable']:.1f}", f"{e2e['ready']:.1f}"],
                     ["model, 2 slots", f"{here['playable']:.1f}", f"{here['ready']:.1f}"]],
                    ["", "playable s", "ready s"]))
        print(f"the job view carried its playback URL first while {e2e['view_status_at_playable']}")
    print(f"\n(bench took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
