"""Segmented transcoding against one ffmpeg process, and the time-to-ready of a long video.

Input: a 1080p clip from bench/videoset.py's writer (24 fps, AAC, a keyframe every 2 s as a
phone writes it, pans, zooms, cuts, a dissolve and a fade), SECONDS long (60 s by default, which
keeps the bench to a few minutes on two cores; SEGMENTS_BENCH_SECONDS overrides it), planned into
spans of SPAN_SECONDS by services.common.segments.plan.

1. Transcoding, same ladder (rungs from presets.json, same x264 preset, CRF and caps per rung,
   IDRs at the same times, AAC once): (a) one ffmpeg process, the binary of the imageio-ffmpeg
   wheel, split + scale filters into four libx264 encoders, HLS/TS out; (b) our
   services.render.ladder.encode_segment over every span, sequentially, in one child process.
   Both pinned to one core, so the CPU and the wall time compare the work, not the threading.
   CPU = user + sys of the child (os.wait4); for ours also the CPU inside encode_segment only
   (the service's media child is forked from a forkserver with the imports done). Bytes per rung;
   PSNR per rung: ffmpeg's psnr filter against the source scaled by ffmpeg to the rung's size with
   the scaler flags our encoder uses, ours minus ffmpeg's.
2. Parallel efficiency: the same spans on two worker processes, one core each, at once:
   sequential wall / (2 x parallel wall).
3. Fan-out overhead of a one-segment (8 s) video: what segmenting adds (plan from the packet
   index, the result JSON written and read, playlists) against its render (encode_segment).
4. Time-to-ready of a 10-minute 1080p video on Cloud Run at 1, 10 and 50 instances, from the
   per-second costs measured here, a Pub/Sub push hop measured on the local emulator and stated
   production figures.

The machine is shared: read the ratios (measured in the same run), not the absolute seconds.
Outputs under bench/out/segments/.
"""
from __future__ import annotations

import json
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


def clip_spec(seconds: int, name: str):
    """Shots of ~6 s over the photos: pans and zooms (what costs an encoder), cuts, one dissolve, one fade."""
    from bench.videoset import FPS, ClipSpec, ShotSpec

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
    from bench.videoset import write_clip

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
    from services.common.budget import Budget
    from services.common.video import Limits

    out: list[dict] = []
    t0 = time.time()
    if spec["task"] == "encode":
        from services.render.ladder import Rung, encode_segment

        rungs = [Rung.from_dict(r) for r in spec["rungs"]]
        for i, a, b in spec["spans"]:
            c, w = _cpu_self(), time.perf_counter()
            res = encode_segment(spec["path"], a, b, rungs, spec["hls_s"], str(Path(spec["out"]) / f"span-{i:03d}"),
                                 Limits(), Budget.unlimited(), audio=True)
            out.append({"index": i, "start_s": a, "end_s": b, "cpu": _cpu_self() - c, "wall": time.perf_counter() - w,
                        "result": res})
    elif spec["task"] == "analyze":
        from services.analyze.segmented import analyze_span

        for i, a, b in spec["spans"]:
            c, w = _cpu_self(), time.perf_counter()
            res = analyze_span(spec["path"], a, b, spec["overlap_s"], Limits(), Budget.unlimited())
            out.append({"index": i, "start_s": a, "end_s": b, "cpu": _cpu_self() - c, "wall": time.perf_counter() - w,
                        "decoded_s": res["decoded_to_s"] - res["decoded_from_s"], "result": res})
    elif spec["task"] == "one-segment":
        out.append(_one_segment(spec))
    return {"start": t0, "end": time.time(), "spans": out}


def _timed(fn):
    c, w = _cpu_self(), time.perf_counter()
    value = fn()
    return value, _cpu_self() - c, time.perf_counter() - w


def _one_segment(spec: dict) -> dict:
    """A video that is one segment: its analysis and render, and what segmenting adds around them."""
    import tempfile

    from services.analyze import segmented
    from services.common.budget import Budget
    from services.common.segments import plan_file
    from services.common.video import Limits, VideoFile
    from services.render import ladder

    path, limits, budget = spec["path"], Limits(), Budget.unlimited()
    rungs = [ladder.Rung.from_dict(r) for r in spec["rungs"]]
    costs: dict[str, float] = {}

    def plan():
        with VideoFile(path) as v:
            return plan_file(v, spec["segment_s"], 100), v.probe(), v.display_size()
    (segments, facts, (w, h)), costs["plan from the packet index"], _ = _timed(plan)
    [seg] = segments
    span, costs["analysis (analyze_span)"], _ = _timed(
        lambda: segmented.analyze_span(path, seg.start_s, seg.end_s, 0.0, limits, budget))
    with tempfile.TemporaryDirectory() as tmp:
        rendered, costs["render (encode_segment)"], _ = _timed(
            lambda: ladder.encode_segment(path, seg.start_s, seg.end_s, rungs, spec["hls_s"], tmp, limits, budget, audio=True))

        def roundtrip():
            for name, result in (("analyze", span), ("render", rendered)):
                file = Path(tmp) / f"{name}-segment-0000.json"
                file.write_text(json.dumps(result))
                json.loads(file.read_text())
        _, costs["segment results written + read (JSON)"], _ = _timed(roundtrip)
        _, costs["analysis merge"], _ = _timed(
            lambda: segmented.merge({**facts, "format": "mp4", "width": w, "height": h}, [span]))
        _, costs["playlists (media + master)"], _ = _timed(lambda: _playlists(ladder, rendered))
        top = next(iter(rendered["rungs"].values()))
        _, costs["MP4 remux of the top rung"], _ = _timed(
            lambda: ladder.remux_mp4([str(Path(tmp) / s["file"]) for s in top["segments"]], str(Path(tmp) / "out.mp4")))
    return {"costs": costs, "seconds": seg.end_s - seg.start_s}


def _playlists(ladder, rendered: dict) -> list[str]:
    texts, variants = [], []
    for name, r in rendered["rungs"].items():
        segs = [{"uri": s["file"].split("/", 1)[-1], "duration_s": s["duration_s"]} for s in r["segments"]]
        texts.append(ladder.media_playlist(segs, max(s["duration_s"] for s in segs)))
        variants.append({"uri": f"{name}/index.m3u8", **{k: v for k, v in r.items() if k != "segments"}})
    texts.append(ladder.master_playlist(variants))
    return texts


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
    return {"y": float(fields["y"]), "average": float(fields["average"]), "frames": count_frames(distorted)}


def count_frames(ts: list[Path]) -> int:
    import av

    n = 0
    for path in ts:
        with av.open(str(path)) as c:
            n += sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    return n



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
        def do_POST(self):  # noqa: N802 (http.server's name)
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
