"""Segmented transcoding against one ffmpeg process, and the time-to-ready of a long video.

Input: a 1080p clip from tests/support/videoset.py's writer (24 fps, AAC, a keyframe every 2 s as a
phone writes it, pans, zooms, cuts, a dissolve and a fade), SECONDS long (60 s by default, which
keeps the bench to a few minutes on two cores; SEGMENTS_BENCH_SECONDS overrides it), planned into
spans of SPAN_SECONDS by services.media.spans.plan.

1. Transcoding, same ladder (rungs from presets.json, same x264 preset, CRF and caps per rung,
   IDRs at the same times, AAC once): (a) one ffmpeg process, the binary of the imageio-ffmpeg
   wheel, split + scale filters into four libx264 encoders, HLS/TS out; (b) our
   services.render.ladder.encode_span over every span, sequentially, in one child process.
   Both pinned to one core, so the CPU and the wall time compare the work, not the threading.
   CPU = user + sys of the child (os.wait4); for ours also the CPU inside encode_span only
   (the service's media child is forked from a forkserver with the imports done), and ours over
   the clip as one span (what the encoder harness costs apart from segmenting). Bytes per rung
   (and per elementary stream, so encoder bits and MPEG-TS packaging are told apart);
   PSNR per rung: ffmpeg's psnr filter against the source scaled by ffmpeg to the rung's size with
   the scaler flags our encoder uses, ours minus ffmpeg's.
2. Parallel efficiency: the same spans on two worker processes, one core each, at once:
   sequential wall / (2 x parallel wall), and the CPU ratio of the same work (robust to the other
   processes of a shared machine; the model uses it).
3. Fan-out overhead of a one-segment (8 s) video: what segmenting adds (plan from the packet
   index, the result JSON written and read, playlists) against its render (encode_span).
4. Time-to-ready of a 10-minute 1080p video on Cloud Run at 1, 10 and 50 instances, from the
   per-second costs measured here, a Pub/Sub push hop measured on the local emulator and stated
   production figures; then with render beside analysis (`model_beside`: the ladder on the plan,
   the picture segments once the analysis is here, the later branch sets the join), against
   analyze-then-render with the same costs.

The machine is shared: read the ratios (measured in the same run), not the absolute seconds.
Outputs under bench/out/segments/.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "segments"
VERSION = 1
SIZE = (1920, 1080)
SECONDS = int(os.environ.get("SEGMENTS_BENCH_SECONDS", "60"))
SPAN_SECONDS = 15.0
SHORT_SECONDS = 8
GOP = 48  # frames: a keyframe every 2 s at 24 fps
HLS_SEGMENT_S = 6.0  # Apple's recommended HLS target duration
VIDEO_SEGMENT_S = 30.0  # VIDEO_SEGMENT_SECONDS' default (SEGMENTS.md): what the one-segment video and the model use
SCALER = "bicubic"  # swscale's default: what encode_span's scale filter uses, given to ffmpeg and the PSNR reference


def clip_spec(seconds: int, name: str):
    """Shots of ~6 s over the photos: pans and zooms (what costs an encoder), cuts, one dissolve, one fade."""
    from tests.support.videoset import FPS, ClipSpec, ShotSpec

    kinds = [("coffee", "pan", 4.0, (1, 0)), ("astronaut", "zoom", 0.5, (1, 0)), ("rocket", "pan", 6.0, (0, 1)),
             ("chelsea", "still", 0.0, (1, 0)), ("hubble_deep_field", "pan", 5.0, (0.7, 0.7)),
             ("grass", "pan", 8.0, (-1, 0)), ("camera", "zoom", -0.4, (1, 0)), ("coins", "pan", 3.0, (1, 0.3)),
             ("immunohistochemistry", "pan", 6.0, (0, -1)), ("brick", "zoom", 0.6, (1, 0))]
    shots, left, i = [], seconds * FPS, 0
    while left > 0:
        photo, motion, speed, direction = kinds[i % len(kinds)]
        n = min(left, 6 * FPS + 7 * (i % 3))
        join = "dissolve" if i % 7 == 3 else "fade" if i % 7 == 5 else "cut"
        shots.append(ShotSpec(photo, n, motion, speed, direction, (0.3, 0.4), join=join, mix=24 if join == "dissolve" else 0))
        left -= n
        i += 1
    return ClipSpec(name, shots, SIZE, audio=True)


def source_clip(seconds: int) -> Path:
    """The input clip, written once (cached by VERSION and length)."""
    from tests.support.videoset import write_clip

    path = OUT / f"source-{seconds}s-v{VERSION}.mp4"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        clip = clip_spec(seconds, f"segments-{seconds}s")
        write_clip(clip, path, SIZE, keyframes=range(0, clip.frames, GOP))
    return path



# ---------------------------------------------------------------------------------------------
# Children: every measured piece of work runs in its own process, pinned before heavy imports
# ---------------------------------------------------------------------------------------------
def _cpu_self() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process (x264's, FFmpeg's)
    return r.ru_utime + r.ru_stime


def _worker(spec: dict) -> dict:
    """Run `spec["task"]` over `spec["spans"]` one after another; CPU and wall of each, inside the call."""
    if spec.get("core") is not None:
        os.sched_setaffinity(0, {spec["core"]})
    from services.media.budget import Budget
    from services.media.video import VideoLimits

    out: list[dict] = []
    t0 = time.time()
    if spec["task"] == "encode":
        from services.render.ladder import Rung, encode_span

        rungs = [Rung.from_dict(r) for r in spec["rungs"]]
        for i, a, b in spec["spans"]:
            c, w = _cpu_self(), time.perf_counter()
            res = encode_span(spec["path"], a, b, rungs, hls_segment_s=spec["hls_s"],
                              out_dir=str(Path(spec["out"]) / f"span-{i:03d}"), limits=VideoLimits(), budget=Budget.unlimited(),
                              audio=True)
            out.append({"index": i, "start_s": a, "end_s": b, "cpu": _cpu_self() - c, "wall": time.perf_counter() - w,
                        "result": res})
    elif spec["task"] == "analyze":
        from services.analyze.segmented import analyze_span

        for i, a, b in spec["spans"]:
            c, w = _cpu_self(), time.perf_counter()
            res = analyze_span(spec["path"], a, b, spec["overlap_s"], VideoLimits(), budget=Budget.unlimited())
            out.append({"index": i, "start_s": a, "end_s": b, "cpu": _cpu_self() - c, "wall": time.perf_counter() - w,
                        "decoded_s": res["decoded_to_s"] - res["decoded_from_s"], "result": res})
    elif spec["task"] == "one-segment":
        out.append(_one_segment(spec))
    return {"start": t0, "end": time.time(), "out": spec.get("out"), "spans": out}


def _timed(fn):
    c, w = _cpu_self(), time.perf_counter()
    value = fn()
    return value, _cpu_self() - c, time.perf_counter() - w


def _one_segment(spec: dict) -> dict:
    """A video that is one segment: its analysis and render, and what segmenting adds around them."""
    import tempfile

    from services.analyze import segmented
    from services.media.budget import Budget
    from services.media.spans import plan_file
    from services.media.video import VideoFile, VideoLimits
    from services.render import hls, ladder

    path, limits, budget = spec["path"], VideoLimits(), Budget.unlimited()
    rungs = [ladder.Rung.from_dict(r) for r in spec["rungs"]]
    costs: dict[str, float] = {}

    def plan():
        with VideoFile(path) as v:
            return plan_file(v, spec["segment_s"], 100), v.probe(), v.display_size()
    (segments, facts, (w, h)), costs["plan from the packet index"], _ = _timed(plan)
    [seg] = segments
    span, costs["analysis (analyze_span)"], _ = _timed(
        lambda: segmented.analyze_span(path, seg.start_s, seg.end_s, 0.0, limits, budget=budget))
    with tempfile.TemporaryDirectory() as tmp:
        rendered, costs["render (encode_span)"], _ = _timed(
            lambda: ladder.encode_span(path, seg.start_s, seg.end_s, rungs, hls_segment_s=spec["hls_s"], out_dir=tmp,
                                       limits=limits, budget=budget, audio=True))

        def roundtrip():
            for name, result in (("analyze", span), ("render", rendered)):
                file = Path(tmp) / f"{name}-segment-0000.json"
                file.write_text(json.dumps(result))
                json.loads(file.read_text())
        _, costs["segment results written + read (JSON)"], _ = _timed(roundtrip)
        analysis, costs["analysis merge"], _ = _timed(
            lambda: segmented.merge({**facts, "format": "mp4", "width": w, "height": h}, [span]))
        _, costs["pictures (render_moments)"], _ = _timed(lambda: _pictures(path, seg, analysis, limits, budget))
        top = [str(Path(tmp) / s["file"]) for s in next(iter(rendered["rungs"].values()))["segments"]]
        _, costs["playlists (media + master)"], _ = _timed(
            lambda: hls.playlists([rendered], lambda i, f: f, lambda r: f"{r}/index.m3u8", spec["hls_s"]))
        _, costs["MP4 remux of the top rung"], _ = _timed(lambda: ladder.remux_mp4(top, str(Path(tmp) / "out.mp4")))
    return {"costs": costs, "seconds": seg.end_s - seg.start_s}


def _pictures(path: str, seg, analysis: dict, limits, budget) -> dict:
    """A picture segment's work (render beside analysis): the span's poster, shot stills and tiles."""
    from services.common.config import Settings
    from services.media.spans import Span
    from services.render.presets import load
    from services.render.video import assign, moments, render_moments
    from services.render.video_stage import board_of
    from services.render.work import RenderOptions

    opts = RenderOptions.build(Settings.from_env(), load())
    board = board_of(opts, analysis)
    [wanted] = assign(moments(analysis, board, opts.video_max_stills), [Span(0, seg.start_s, seg.end_s)])
    cat = opts.catalogue
    return render_moments(path, seg.start_s, seg.end_s, wanted, poster=cat.poster, still=cat.still, encoders=cat.encoders,
                          tile=board.tile, limits=limits, budget=budget)


def _start(spec: dict, tag: str) -> tuple[subprocess.Popen, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    spec_path, log = OUT / f"{tag}.spec.json", OUT / f"{tag}.out"
    spec_path.write_text(json.dumps(spec))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.segments_bench", "--worker", str(spec_path)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def _finish(proc: subprocess.Popen, log: Path) -> dict:
    """Wait for a child; its whole CPU (user + sys, every thread) from the kernel's rusage."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode:
        raise RuntimeError(f"bench worker failed ({log}):\n{text[-3000:]}")
    return {**json.loads(text.strip().splitlines()[-1]), "child_cpu": ru.ru_utime + ru.ru_stime}


def run_workers(specs: list[dict], tag: str) -> list[dict]:
    """Start every spec at once (one process each), wait for all."""
    started = [_start(s, f"{tag}-{i}") for i, s in enumerate(specs)]
    return [_finish(p, log) for p, log in started]


# ---------------------------------------------------------------------------------------------
# The ffmpeg side
# ---------------------------------------------------------------------------------------------
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_ladder(src: Path, rungs: list, opts: dict, keyframes_s: list[float], out: Path) -> list[str]:
    """One ffmpeg process: decode once, split, scale per rung, one libx264 per rung, AAC encoded once,
    teed into one HLS output per rung. `opts`: what our encoder sets (see encoder_options)."""
    split = "".join(f"[s{i}]" for i in range(len(rungs)))
    graph = [f"[0:v]split={len(rungs)}{split}"]
    graph += [f"[s{i}]scale={r.width}:{r.height}:flags={opts['scaler']},setsar=1[v{i}]" for i, r in enumerate(rungs)]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i", str(src),
           "-filter_complex", ";".join(graph)]
    for i in range(len(rungs)):
        cmd += ["-map", f"[v{i}]"]
    cmd += ["-map", "0:a:0"]
    times = ",".join(f"{t:.6f}" for t in keyframes_s)
    for i, r in enumerate(rungs):
        cmd += [f"-c:v:{i}", "libx264", f"-force_key_frames:v:{i}", times]
        for k, v in opts["x264"](r).items():
            cmd += [f"-{k}:v:{i}", str(v)]
    cmd += ["-c:a", "aac", "-b:a", str(opts["audio_bitrate"]), "-ar", "48000", "-ac", "2"]
    slaves = []
    for i, r in enumerate(rungs):
        (out / r.name).mkdir(parents=True, exist_ok=True)
        slaves.append(f"[select='v\\:{i},a':f=hls:hls_time={opts['hls_s']}:hls_playlist_type=vod:"
                      f"hls_segment_filename={out / r.name}/%02d.ts]{out / r.name}/index.m3u8")
    return cmd + ["-f", "tee", "|".join(slaves)]


def run_measured(cmd: list[str], core: int | None) -> dict:
    """A child command pinned to `core`; its CPU (user + sys, all threads) and wall time."""
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{cmd[0]} failed:\n{err[-3000:]}")
    return {"cpu": ru.ru_utime + ru.ru_stime, "wall": wall}


def psnr(distorted: list[Path], src: Path, width: int, height: int, scaler: str) -> dict:
    """ffmpeg's psnr filter: the rung (its TS files in order) against the source scaled by ffmpeg the same way."""
    graph = (f"[0:v]settb=AVTB,setpts=PTS-STARTPTS[d];[1:v]scale={width}:{height}:flags={scaler},settb=AVTB,"
             f"setpts=PTS-STARTPTS[r];[d][r]psnr")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", "concat:" + "|".join(map(str, distorted)), "-i", str(src),
           "-lavfi", graph, "-f", "null", "-"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    line = next(ln for ln in text.splitlines() if "PSNR y:" in ln)
    fields = dict(part.split(":") for part in line.split("PSNR ", 1)[1].split())
    return {"y": float(fields["y"]), "average": float(fields["average"]), **stream_bytes(distorted)}


def stream_bytes(ts: list[Path]) -> dict:
    """Video frames and the bytes of each elementary stream: what the encoders made, apart from the container."""
    import av

    out = {"frames": 0, "video": 0, "audio": 0, "files": sum(p.stat().st_size for p in ts)}
    for path in ts:
        with av.open(str(path)) as c:
            for p in c.demux():
                if p.size:
                    out[p.stream.type] += p.size
                    out["frames"] += p.stream.type == "video"
    return out



# ---------------------------------------------------------------------------------------------
# One Pub/Sub push hop on the local emulator
# ---------------------------------------------------------------------------------------------
def pubsub_hop(samples: int = 20) -> dict:
    """Publish -> push request received, on the official emulator (its own launcher, free port),
    pushing to a bare HTTP endpoint on 127.0.0.1 that answers 204: the bus's own latency, one
    message at a time. The emulator is started and stopped here."""
    import statistics
    import tempfile
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from google.cloud import pubsub_v1

    from localcloud.processes import ProcessManager
    from localcloud.stack import DEFAULT_PORTS, StackConfig, _environ, emulator_procs
    from localcloud.taps import free_port

    got: dict[str, float] = {}
    arrived = threading.Condition()

    class Push(BaseHTTPRequestHandler):
        def do_POST(self):  # http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with arrived:
                got[body["message"]["attributes"]["n"]] = time.perf_counter()
                arrived.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with tempfile.TemporaryDirectory() as state:
        cfg = StackConfig(state_dir=Path(state), project="bench-hop", ports={n: free_port() for n in DEFAULT_PORTS})
        pm = ProcessManager(cfg.state_dir)
        proc = next(p for p in emulator_procs(cfg) if p.name == "pubsub")
        server = ThreadingHTTPServer(("127.0.0.1", 0), Push)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            pm.start(proc)
            pm.wait_healthy(proc)
            with _environ(cfg.client_env()):
                pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
                topic, subscription = pub.topic_path(cfg.project, "hop"), sub.subscription_path(cfg.project, "hop-push")
                pub.create_topic(name=topic)
                sub.create_subscription(request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60,
                                                 "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_port}/"}})
                pub.publish(topic, b"{}", n="warm").result()  # first delivery opens connections
                with arrived:
                    arrived.wait_for(lambda: "warm" in got, timeout=30)
                hops = []
                for i in range(samples):
                    t = time.perf_counter()
                    pub.publish(topic, b"{}", n=str(i)).result()
                    with arrived:
                        arrived.wait_for(lambda i=i: str(i) in got, timeout=30)
                    hops.append(got[str(i)] - t)
        finally:
            server.shutdown()
            pm.stop(proc.name)
    hops.sort()
    return {"median_s": statistics.median(hops), "p90_s": hops[int(0.9 * (len(hops) - 1))], "samples": len(hops)}



# ---------------------------------------------------------------------------------------------
# Time-to-ready of a 10-minute 1080p video
# ---------------------------------------------------------------------------------------------
MODEL_SECONDS = 600
MODEL_INSTANCES = (1, 10, 50)
MODEL_SEGMENT_SECONDS = (6, 10, 15, 20, 30, 60)
SLOTS_PER_INSTANCE = 2  # terraform/variables.tf: analyze and render have cpu = 2, concurrency = 2
HOPS = 6  # media-ingested, video-segments-analyze, media-analyzed, video-segments-render, media-rendered, media-events
# Stated production figures (not measured here):
HOP_PROD_S = 0.1  # one push delivery when the subscriber is warm (the emulator's own figure is printed beside it)
COLD_PLATFORM_S = 2.0  # Cloud Run's share of a cold start of a small container, before our imports run
GCS_DOWN_MBPS = 100.0  # one stream GCS -> Cloud Run in-region, MB/s
GCS_UP_MBPS = 50.0
FANIN_COMMIT_S = 0.05  # one compare-and-set of the job's finished set (Firestore transaction, no contention)


def model(m: dict, segment_s: float, instances: int, ranged: bool) -> dict:
    """Seconds on the critical path from media-ingested to media-events, by phase.

    m: measured per-second costs (one core) and sizes. `ranged`: a segment reads only its byte range
    of the original (a GCS ranged read) instead of downloading the whole file."""
    n = math.ceil(MODEL_SECONDS / segment_s)
    slots = instances * SLOTS_PER_INSTANCE
    waves = math.ceil(n / slots)
    src_bytes = m["src_bytes_per_s"] * MODEL_SECONDS
    seg_down = (src_bytes / n if ranged else src_bytes) / (GCS_DOWN_MBPS * 1e6)
    eff = m["efficiency"]
    analyze_seg = seg_down + (segment_s + 2 * m["overlap_s"]) * m["analyze_cpu_per_s"] / eff
    render_seg = seg_down + segment_s * m["render_cpu_per_s"] / eff + segment_s * m["out_bytes_per_s"] / (GCS_UP_MBPS * 1e6)
    cold = COLD_PLATFORM_S + m["import_s"]
    top_bytes = m["top_bytes_per_s"] * MODEL_SECONDS
    phases = {
        "hops": HOPS * m["hop_s"],
        "cold starts (1st wave of each fan-out)": 2 * cold,
        "analyze: download + plan": src_bytes / (GCS_DOWN_MBPS * 1e6) + MODEL_SECONDS * m["plan_cpu_per_s"],
        "analyze segments": waves * analyze_seg,
        "analyze fan-in": min(n, slots) * FANIN_COMMIT_S + MODEL_SECONDS * m["merge_cpu_per_s"],
        "render segments": waves * render_seg,
        "render fan-in (remux MP4, upload)": (min(n, slots) * FANIN_COMMIT_S + top_bytes / (GCS_DOWN_MBPS * 1e6)
                                              + MODEL_SECONDS * m["remux_cpu_per_s"] + top_bytes / (GCS_UP_MBPS * 1e6)),
    }
    return {"segments": n, "waves": waves, "phases": phases, "total": sum(phases.values())}


def model_beside(m: dict, segment_s: float, instances: int, ranged: bool) -> dict:
    """`model` with render beside analysis (ARCHITECTURE.md, invariants 4 and 12): after the plan, two
    branches run at once and the later one sets the time of the join.

    - ladder: the plan's hop to render, its fan-out hop, the ladder segments (render's own instances);
    - analysis: the analyze segments and fan-in, media-analyzed's hop, the picture segments' hop and
      work (one decode of the span up to its last picture; when 2n segments do not fit render's slots
      at once, they wait for a wave of the ladder).
    The join is render's fan-in as before (remux the MP4, upload), then media-rendered and media-events.
    A segment of each branch starts cold (both services scale out at the same moment)."""
    base = model(m, segment_s, instances, ranged)
    p, n, waves = base["phases"], base["segments"], base["waves"]
    slots = instances * SLOTS_PER_INSTANCE
    seg_down = (m["src_bytes_per_s"] * MODEL_SECONDS / (n if ranged else 1)) / (GCS_DOWN_MBPS * 1e6)
    pictures_seg = seg_down + segment_s * m["pictures_cpu_per_s"] / m["efficiency"]
    cold = COLD_PLATFORM_S + m["import_s"]
    ladder = 2 * m["hop_s"] + cold + p["render segments"]
    analysis = (3 * m["hop_s"] + cold + p["analyze segments"] + p["analyze fan-in"]
                + pictures_seg + (p["render segments"] / waves if 2 * n > slots else 0.0))
    phases = {
        "hops (media-ingested; media-rendered, media-events)": 3 * m["hop_s"],
        "analyze: download + plan": p["analyze: download + plan"],
        "ladder branch (plan hop, fan-out hop, cold start, ladder segments)": ladder,
        "analysis branch (fan-out hop, cold start, segments, fan-in, hop, pictures)": analysis,
        "render fan-in = the join (remux MP4, upload)": p["render fan-in (remux MP4, upload)"],
    }
    critical = {k: v for k, v in phases.items() if not k.startswith(("ladder branch", "analysis branch"))}
    total = sum(critical.values()) + max(ladder, analysis)
    return {"segments": n, "waves": waves, "phases": phases, "total": total,
            "waits_for": "ladder" if ladder >= analysis else "analysis"}


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def _bins(spans: list[tuple[int, float, float]], k: int) -> list[list]:
    """Longest first into the emptiest worker (what a queue of pushes does with equal workers)."""
    bins: list[list] = [[] for _ in range(k)]
    for span in sorted(spans, key=lambda s: s[1] - s[2]):
        min(bins, key=lambda b: sum(e - a for _, a, e in b)).append(span)
    return [sorted(b) for b in bins]


def _rung_files(results: list[dict], rung: str) -> list[Path]:
    files = []
    for worker in results:
        for span in worker["spans"]:
            base = Path(worker["out"]) / f"span-{span['index']:03d}"
            files += [(span["start_s"], base / s["file"]) for s in span["result"]["rungs"][rung]["segments"]]
    return [f for _, f in sorted(files)]


def _total(results: list[dict], key: str) -> float:
    return sum(s[key] for w in results for s in w["spans"])


def main() -> None:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from bench.analyze_bench import table
    from services.analyze.segmented import DEFAULT_OVERLAP_S
    from services.media.spans import plan_file
    from services.media.video import VideoFile
    from services.render import ladder as ladder_mod
    from services.render.presets import load

    t0 = time.perf_counter()
    clip, short = source_clip(SECONDS), source_clip(SHORT_SECONDS)
    with VideoFile(clip) as v:
        plan_cpu = time.process_time()
        segments = plan_file(v, SPAN_SECONDS, 100)
        plan_cpu = time.process_time() - plan_cpu
        w, h = v.display_size()
        fps = float(v.stream.average_rate)
    rungs = ladder_mod.choose_rungs(load().ladder, w, h)
    spans = [(s.index, s.start_s, s.end_s) for s in segments]
    core = max(os.sched_getaffinity(0))
    print(f"clip {w}x{h} {fps:g} fps, {SECONDS} s with AAC ({clip.stat().st_size / 1e6:.1f} MB), ready in "
          f"{time.perf_counter() - t0:.0f} s; plan at {SPAN_SECONDS:g} s: "
          + ", ".join(f"[{a:g}, {b:g})" for _, a, b in spans)
          + f"; rungs {', '.join(f'{r.name} {r.width}x{r.height} crf {r.crf}' for r in rungs)}, x264 {rungs[0].preset}, "
          f"HLS {HLS_SEGMENT_S:g} s. The machine is shared with other engineers: compare the ratios.")
    for d in ("ours-seq", "ours-par", "ours-one", "ffmpeg"):
        shutil.rmtree(OUT / d, ignore_errors=True)
    base = {"task": "encode", "path": str(clip), "rungs": [r.as_dict() for r in rungs], "hls_s": HLS_SEGMENT_S}

    # 1. Ours, sequential, one core; then ffmpeg on the same core with the IDRs ours placed.
    seq = run_workers([{**base, "core": core, "spans": spans, "out": str(OUT / "ours-seq")}], "seq")
    top = rungs[0].name
    idr = sorted(s["start_s"] for sp in seq[0]["spans"] for s in sp["result"]["rungs"][top]["segments"])
    opts = {"scaler": SCALER, "hls_s": HLS_SEGMENT_S, "audio_bitrate": f"{rungs[0].audio_kbps}k",
            "x264": lambda r: ladder_mod.x264_options(r, fps, HLS_SEGMENT_S)}
    ff = run_measured(ffmpeg_ladder(clip, rungs, opts, idr, OUT / "ffmpeg"), core)
    # Ours over the whole clip as ONE span: what the encoder harness costs apart from segmenting.
    whole = run_workers([{**base, "core": core, "spans": [(0, spans[0][1], spans[-1][2])], "out": str(OUT / "ours-one")}],
                        "whole")

    # 2. Ours on two workers at once, one core each.
    cores = sorted(os.sched_getaffinity(0))[:2]
    par_specs = [{**base, "core": c, "spans": b, "out": str(OUT / "ours-par")}
                 for c, b in zip(cores, _bins(spans, 2), strict=False)]
    par = run_workers(par_specs, "par")

    # 3. Analysis per span (for the model), one core.
    ana = run_workers([{"task": "analyze", "path": str(clip), "core": core, "spans": spans,
                        "overlap_s": DEFAULT_OVERLAP_S}], "analyze")

    # 4. A one-segment video: what segmenting adds.
    one = run_workers([{"task": "one-segment", "path": str(short), "core": core, "rungs": base["rungs"],
                        "hls_s": HLS_SEGMENT_S, "segment_s": VIDEO_SEGMENT_S}], "one")[0]["spans"][0]

    # 5. PSNR and bytes per rung (not timed: two at a time).
    jobs = {}
    with ThreadPoolExecutor(2) as pool:
        for r in rungs:
            ours_ts = _rung_files(seq, r.name)
            ff_ts = sorted((OUT / "ffmpeg" / r.name).glob("*.ts"))
            jobs[r.name] = (pool.submit(psnr, ours_ts, clip, r.width, r.height, SCALER),
                            pool.submit(psnr, ff_ts, clip, r.width, r.height, SCALER))
    with VideoFile(clip) as v:
        src_frames = sum(1 for _ in v.container.demux(v.stream) if _.size)

    # 6. One push hop on the emulator.
    try:
        hop = pubsub_hop()
    except Exception as exc:  # noqa: BLE001 (the bench goes on with the stated production figure)
        hop = {"error": f"{type(exc).__name__}: {exc}"}

    ours_cpu, ours_wall = _total(seq, "cpu"), seq[0]["end"] - seq[0]["start"]
    print("\nTranscoding the ladder, one core each: ours = encode_span over every span in one child process; "
          "ffmpeg = one process (imageio-ffmpeg's binary), split + scale -> 4 x libx264, AAC once, HLS")
    rows = [["ffmpeg, one process", f"{ff['cpu']:.1f}", f"{ff['wall']:.1f}", "1.00x", "-"],
            ["ours, inside encode_span", f"{ours_cpu:.1f}", f"{ours_wall:.1f}", f"{ours_cpu / ff['cpu']:.3f}x",
             f"{_total(seq, 'wall'):.1f}"],
            ["ours, whole child (imports too)", f"{seq[0]['child_cpu']:.1f}", "-",
             f"{seq[0]['child_cpu'] / ff['cpu']:.3f}x", "-"],
            ["ours, the clip as one span (no segmenting)", f"{_total(whole, 'cpu'):.1f}", f"{_total(whole, 'wall'):.1f}",
             f"{_total(whole, 'cpu') / ff['cpu']:.3f}x", "-"]]
    print(table(rows, ["", "CPU s", "wall s", "CPU vs ffmpeg", "sum of span walls s"]))
    rows, worst_bytes, worst_psnr, frames_ok = [], 0.0, 0.0, True
    for r in rungs:
        po, pf = jobs[r.name][0].result(), jobs[r.name][1].result()
        bo, bf = po["files"], pf["files"]
        worst_bytes = max(worst_bytes, abs(bo / bf - 1))
        worst_psnr = max(worst_psnr, abs(po["average"] - pf["average"]))
        frames_ok &= po["frames"] == src_frames == pf["frames"]
        ts_o, ts_f = (x["files"] - x["video"] - x["audio"] for x in (po, pf))
        rows.append([r.name, f"{r.width}x{r.height}", f"{bo / 1e6:.2f}", f"{bf / 1e6:.2f}", f"{100 * (bo / bf - 1):+.1f} %",
                     f"{100 * (po['video'] / pf['video'] - 1):+.1f} %", f"{100 * (po['audio'] / pf['audio'] - 1):+.1f} %",
                     f"{100 * ts_o / bo:.1f} / {100 * ts_f / bf:.1f} %",
                     f"{po['average']:.2f}", f"{pf['average']:.2f}", f"{po['average'] - pf['average']:+.2f}",
                     f"{po['y'] - pf['y']:+.2f}", f"{po['frames']} / {pf['frames']} / {src_frames}"])
    print(f"\nPer rung: bytes of the TS segments (and of the video and audio streams in them, and the MPEG-TS "
          f"packaging's share); PSNR (ffmpeg psnr filter, YUV average) against the source scaled by ffmpeg with "
          f"flags={SCALER}")
    print(table(rows, ["rung", "size", "ours MB", "ffmpeg MB", "bytes", "video stream", "audio stream",
                       "TS overhead ours / ffmpeg", "ours dB", "ffmpeg dB", "ours - ffmpeg", "Y only",
                       "frames ours / ffmpeg / source"]))

    par_wall = max(x["end"] for x in par) - min(x["start"] for x in par)
    eff = ours_wall / (2 * par_wall)
    print("\nTwo segment workers at once (two processes, one core each) against the sequential run")
    rows = [[f"worker on core {c}", ", ".join(f"[{a:g}, {b:g})" for _, a, b in s["spans"]),
              f"{x['end'] - x['start']:.1f}",
             f"{_total([x], 'cpu'):.1f}", f"{_total([x], 'cpu') / (x['end'] - x['start']):.2f}"]
            for c, s, x in zip(cores, par_specs, par, strict=True)]
    rows.append(["sequential (above)", "all", f"{ours_wall:.1f}", f"{ours_cpu:.1f}", f"{ours_cpu / ours_wall:.2f}"])
    print(table(rows, ["", "spans", "wall s", "CPU s", "CPU / wall (1.0 = had its core)"]))
    par_cpu = _total(par, "cpu")
    print(f"efficiency = sequential wall / (2 x parallel wall) = {ours_wall:.1f} / (2 x {par_wall:.1f}) = {eff:.2f}; "
          f"the work itself: sequential CPU / parallel CPU = {ours_cpu:.1f} / {par_cpu:.1f} = {ours_cpu / par_cpu:.2f} "
          f"(below 1: running two at once costs more CPU). On a shared machine the wall figure also counts the time "
          f"other processes held the cores: see CPU / wall")

    costs = one["costs"]
    render = costs["render (encode_span)"]
    work = ("render (encode_span)", "analysis (analyze_span)", "MP4 remux of the top rung", "pictures (render_moments)")
    extra_keys = [k for k in costs if k not in work]
    extra = sum(costs[k] for k in extra_keys)
    print(f"\nA one-segment video ({one['seconds']:g} s, 1080p, all rungs), CPU s, one core: what segmenting adds "
          f"(counted against the render) and, for scale, the work itself")
    rows = [[k, f"{v:.3f}", f"{100 * v / render:.2f} %", "added" if k in extra_keys else "work"] for k, v in costs.items()]
    rows.append(["added, total", f"{extra:.3f}", f"{100 * extra / render:.2f} %", ""])
    print(table(rows, ["step", "CPU s", "of render", ""]))

    src_bytes = clip.stat().st_size
    out_bytes = sum(j[0].result()["files"] for j in jobs.values())
    decoded = sum(s["decoded_s"] for s in ana[0]["spans"])
    m = {"render_cpu_per_s": ours_cpu / SECONDS, "analyze_cpu_per_s": _total(ana, "cpu") / decoded,
         "overlap_s": DEFAULT_OVERLAP_S, "efficiency": min(1.0, ours_cpu / par_cpu), "src_bytes_per_s": src_bytes / SECONDS,
         "out_bytes_per_s": out_bytes / SECONDS, "top_bytes_per_s": jobs[top][0].result()["files"] / SECONDS,
         "plan_cpu_per_s": plan_cpu / SECONDS,
         "merge_cpu_per_s": costs["analysis merge"] / one["seconds"],
         "pictures_cpu_per_s": costs["pictures (render_moments)"] / one["seconds"],
         "remux_cpu_per_s": costs.get("MP4 remux of the top rung", 0.0) / one["seconds"],
         "import_s": seq[0]["child_cpu"] - ours_cpu, "hop_s": HOP_PROD_S}
    print_model(m, hop, table)

    best = min((model(m, seg, 50, ranged)["total"], seg, ranged) for seg in MODEL_SEGMENT_SECONDS for ranged in (False, True))
    print("\nGoals (issue 12)")
    goals = [("total CPU <= 1.15x one ffmpeg process", f"{ours_cpu / ff['cpu']:.3f}x", ours_cpu / ff["cpu"] <= 1.15),
             ("bytes within +-5 % (every rung)", f"{100 * worst_bytes:.1f} %", worst_bytes <= 0.05),
             ("PSNR within 0.3 dB (every rung)", f"{worst_psnr:.2f} dB", worst_psnr <= 0.3),
             ("every frame, once (ours, ffmpeg, source)", "yes" if frames_ok else "NO", frames_ok),
             ("parallel efficiency, 2 workers >= 0.8 (wall)" + (" - over 1: the load of the machine changed "
              "between the runs, not valid" if eff > 1.05 else ""), f"{eff:.2f}", 0.8 <= eff <= 1.05),
             ("  the same work, CPU: sequential / parallel", f"{ours_cpu / par_cpu:.2f}", ours_cpu / par_cpu >= 0.8),
             ("fan-out overhead, one-segment video <= 5 % of render", f"{100 * extra / render:.2f} %", extra / render <= 0.05),
             (f"time-to-ready, 10 min 1080p at 50 instances < 60 s ({VIDEO_SEGMENT_S:g} s segments)",
              f"{model(m, VIDEO_SEGMENT_S, 50, False)['total']:.0f} s",
              model(m, VIDEO_SEGMENT_S, 50, False)["total"] < 60),
             (f"  best in the model at 50 instances ({best[1]:g} s segments, "
              f"{'ranged reads' if best[2] else 'whole-file downloads'})", f"{best[0]:.0f} s", best[0] < 60),
             (f"  render beside analysis, {VIDEO_SEGMENT_S:g} s segments, ranged reads (the chain today)",
              f"{model_beside(m, VIDEO_SEGMENT_S, 50, True)['total']:.0f} s (analyze then render, ranged: "
              f"{model(m, VIDEO_SEGMENT_S, 50, True)['total']:.0f} s)", model_beside(m, VIDEO_SEGMENT_S, 50, True)["total"] < 60)]
    print(table([[g, v, "met" if ok else "MISSED"] for g, v, ok in goals], ["goal", "measured", "status"]))
    print(f"\n(bench took {time.perf_counter() - t0:.0f} s)")


def print_model(m: dict, hop: dict, table) -> None:
    print(f"\nTime-to-ready model: a {MODEL_SECONDS // 60}-minute 1080p video, from media-ingested to media-events. "
          f"Measured here (one core): render {m['render_cpu_per_s']:.2f} CPU s per s of video (all rungs), analysis "
          f"{m['analyze_cpu_per_s']:.3f} CPU s per decoded s (+{m['overlap_s']:g} s overlap each side), two segments "
          f"at once on an instance's 2 vCPUs cost 1/{m['efficiency']:.2f} their CPU alone (the CPU ratio above: a Cloud "
          f"Run vCPU is not shared, this machine was), source {8 * m['src_bytes_per_s'] / 1e6:.1f} Mbit/s, ladder "
          f"{8 * m['out_bytes_per_s'] / 1e6:.1f} Mbit/s. Pub/Sub push hop on the local emulator: "
          + (f"median {hop['median_s'] * 1000:.0f} ms, p90 {hop['p90_s'] * 1000:.0f} ms ({hop['samples']} pushes)"
             if "median_s" in hop else f"not measured ({hop['error']})")
          + f". Stated, not measured: a hop {HOP_PROD_S * 1000:.0f} ms, cold start {COLD_PLATFORM_S:g} s + our "
          f"process start and imports (measured: the child's CPU outside encode_span) {m['import_s']:.1f} s, "
          f"GCS {GCS_DOWN_MBPS:g} MB/s down / {GCS_UP_MBPS:g} MB/s up per stream, "
          f"{FANIN_COMMIT_S * 1000:.0f} ms per fan-in commit, {SLOTS_PER_INSTANCE} segments per instance at once.")
    rows = []
    for ranged in (False, True):
        for seg in MODEL_SEGMENT_SECONDS:
            cells = [model(m, seg, n, ranged) for n in MODEL_INSTANCES]
            rows.append(["span bytes only" if ranged else "whole file", f"{seg:g} s", str(cells[0]["segments"]),
                         *[f"{c['total']:.0f} s ({c['waves']} wave{'s' if c['waves'] > 1 else ''})" for c in cells]])
    print(table(rows, ["each segment downloads", "segment", "segments", *[f"{n} instance{'s' if n > 1 else ''}"
                                                                          for n in MODEL_INSTANCES]]))
    detail, fast = model(m, VIDEO_SEGMENT_S, 50, False), model(m, MODEL_SEGMENT_SECONDS[0], 50, True)
    print(f"\nPhases at 50 instances: {VIDEO_SEGMENT_S:g} s segments with whole-file downloads ({detail['segments']} "
          f"segments), and {MODEL_SEGMENT_SECONDS[0]:g} s segments reading their byte range ({fast['segments']} segments)")
    print(table([[k, f"{v:.1f}", f"{fast['phases'][k]:.1f}"] for k, v in detail["phases"].items()]
                + [["total", f"{detail['total']:.1f}", f"{fast['total']:.1f}"]],
                ["phase", f"{VIDEO_SEGMENT_S:g} s, whole file", f"{MODEL_SEGMENT_SECONDS[0]:g} s, ranged"]))
    print_beside(m, table)


def print_beside(m: dict, table) -> None:
    """Render beside analysis against analyze-then-render, same measured costs (ranged reads, as the chain reads)."""
    print(f"\nRender beside analysis (the ladder on the plan, the pictures once the analysis is here, one join), "
          f"ranged reads; picture segments cost {m['pictures_cpu_per_s']:.3f} CPU s per s of span (measured)")
    rows = []
    for seg in MODEL_SEGMENT_SECONDS:
        before = [model(m, seg, n, True) for n in MODEL_INSTANCES]
        after = [model_beside(m, seg, n, True) for n in MODEL_INSTANCES]
        rows.append([f"{seg:g} s", *[f"{b['total']:.0f} s -> {a['total']:.0f} s (waits for {a['waits_for']})"
                                     for b, a in zip(before, after, strict=True)]])
    print(table(rows, ["segment", *[f"{n} instance{'s' if n > 1 else ''}: before -> beside" for n in MODEL_INSTANCES]]))
    beside = model_beside(m, VIDEO_SEGMENT_S, 50, True)
    print(table([[k, f"{v:.1f}"] for k, v in beside["phases"].items()] + [["total (critical path)", f"{beside['total']:.1f}"]],
                ["phase, beside, 50 instances", f"{VIDEO_SEGMENT_S:g} s, ranged"]))



if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(json.loads(Path(sys.argv[2]).read_text()))))
    elif len(sys.argv) > 2 and sys.argv[1] == "--clip":
        t = time.perf_counter()
        print(source_clip(int(sys.argv[2])), f"{time.perf_counter() - t:.0f} s")
    elif len(sys.argv) > 1 and sys.argv[1] == "--hop":
        print(pubsub_hop())
    else:
        main()
