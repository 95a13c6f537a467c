"""Analyze benchmarks: (a) shots and transitions against PySceneDetect on a labelled set, with the
video facts (PTS times, SAR), (b) image analysis of 12/24 MP JPEGs.

Every measurement runs in a fresh subprocess. "One core" means the subprocess pins itself to a
single CPU with sched_setaffinity before importing anything, so FFmpeg and OpenCV size their
thread pools to 1; CPU time is time.process_time() of that process (all its threads). Ratios are
against baselines measured in the same run: a bare threaded PyAV decode of the same files (what
analyze itself decodes with, minus the analysis), and PySceneDetect's ContentDetector and
AdaptiveDetector with their defaults. Each video configuration runs REPEATS times,
interleaved, and the fastest run of each clip counts (the machine is shared; the minimum is the
least disturbed). Peak RSS is the kernel's high-water mark (VmHWM) of a fresh process: ru_maxrss
would be wrong here, since Linux carries the parent's RSS at fork into the child's ru_maxrss.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TOLERANCE = 1  # frames: a hard cut must be found within +-1 frame; a fade or dissolve anywhere in its span +-1
IMAGE_RUNS = 21
REPEATS = int(os.environ.get("ANALYZE_BENCH_REPEATS", "2"))


# ---------------------------------------------------------------------------------------------
# Workers (run in subprocesses)
# ---------------------------------------------------------------------------------------------
def _pin(cores: int) -> None:
    if cores == 1:
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def _video_worker(tool: str, manifest_path: str) -> list[dict]:
    clips = json.loads(Path(manifest_path).read_text())
    results = []
    for clip in clips:
        path = clip["path"]
        cpu, wall = time.process_time(), time.perf_counter()
        extra = {}
        if tool == "decode":
            from tests.support.videoset import bare_decode  # here: the worker pins its core before heavy imports

            bare_decode(path)
            cuts = []
        elif tool in ("ours", "ours-skip-loop-filter"):
            from services.analyze import segmented, video

            if tool == "ours-skip-loop-filter":  # what analyze would do with deblocking skipped on H.264
                segmented.SKIP_LOOP_FILTER = {"h264": "all"}
            a = video.analyze_video(path, ".mp4", 1e9, 10**9)
            pts = [round(t * 1000) for t in clip["pts"]]
            cuts = [_nearest(pts, s["start_ms"]) for s in a["shots"][1:]]
            extra = {"shots": a["shots"], "width": a["width"], "height": a["height"], "rotation": a["rotation"],
                     "audio": len(a["audio"]), "start_s": a["start_s"], "vfr": a["video"]["variable_frame_rate"]}
        else:
            from scenedetect import AdaptiveDetector, ContentDetector, detect

            detector = ContentDetector() if tool == "psd" else AdaptiveDetector()
            cuts = [start.frame_num for start, _ in detect(path, detector)[1:]]
        results.append({"name": clip["name"], "cuts": cuts, "cpu": time.process_time() - cpu,
                        "wall": time.perf_counter() - wall, **extra})
    return results


def _nearest(pts: list[int], ms: int) -> int:
    """The frame whose PTS (ms) is nearest `ms`."""
    import bisect

    i = bisect.bisect_left(pts, ms)
    return min((j for j in (i - 1, i) if 0 <= j < len(pts)), key=lambda j: abs(pts[j] - ms))


def _image_worker(path: str) -> dict:
    import cv2
    import numpy as np
    from PIL import Image

    from services.analyze import image as img
    from services.media.imaging import load_checked, open_image

    raw = Path(path).read_bytes()
    for _ in range(3):  # warm caches, load the cascade
        img.analyze_image(raw, 10**9)
    steps: dict[str, list[float]] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        steps.setdefault(name, []).append(time.perf_counter() - t)
        return out

    for _ in range(IMAGE_RUNS):
        im = timed("open + header, EXIF", lambda: (lambda i: (i, img.exif_subset(i)))(open_image(raw, 10**9)))[0]
        work = timed("decode (DCT-scaled) to working copy", lambda im=im: img._working_copy(im, 1))
        rgb = np.asarray(work)
        gray = timed("grey copy", lambda rgb=rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        timed("palette (k-means, Lab)", lambda rgb=rgb: img.dominant_colors(rgb))
        timed("sharpness (Laplacian)", lambda gray=gray: img.sharpness(gray))
        timed("perceptual hash (DCT)", lambda gray=gray: img.phash(gray))
        faces = timed("faces (Haar, 384 px)", lambda gray=gray: img.detect_faces(gray))
        timed("attention box", lambda gray=gray, faces=faces: img.attention_box(gray, faces))
        timed("TOTAL analyze_image()", lambda: img.analyze_image(raw, 10**9))
    for _ in range(5):  # the naive way: decode every pixel, then shrink
        def naive():
            im = Image.open(__import__("io").BytesIO(raw))
            load_checked(im)
            return im.convert("RGB").resize((512, 384), Image.Resampling.BILINEAR, reducing_gap=2.0)

        timed("baseline: full decode + shrink", naive)
    return {k: statistics.median(v) for k, v in steps.items()}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_worker(path: str) -> dict:
    from services.analyze.image import analyze_image

    raw = Path(path).read_bytes()
    before = _peak_rss_mb()
    analyze_image(raw, 10**9)
    return {"before_mb": before, "peak_mb": _peak_rss_mb()}


def _worker(argv: list[str]) -> None:
    kind, cores = argv[0], int(argv[1])
    _pin(cores)
    if kind == "video":
        out = _video_worker(argv[2], argv[3])
    elif kind == "image":
        out = _image_worker(argv[2])
    else:
        out = _rss_worker(argv[2])
    print(json.dumps(out))


def _run(*args: str) -> object:
    proc = subprocess.run([sys.executable, "-m", "bench.analyze_bench", "--worker", *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "OPENCV_LOG_LEVEL": "ERROR"})
    if proc.returncode:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Scoring and tables
# ---------------------------------------------------------------------------------------------
def score(found: list[int], truth: list[dict], kinds=("cut", "fade", "dissolve")) -> tuple[int, int, int]:
    """(tp, fp, fn). Greedy one-to-one matching; detections matching a transition of another kind are ignored."""
    used: set[int] = set()
    tp = fn = 0
    for t in truth:
        hit = next((f for f in found if f not in used and t["start"] - TOLERANCE <= f <= t["end"] + TOLERANCE), None)
        if hit is not None:
            used.add(hit)
        if t["kind"] in kinds:
            tp += hit is not None
            fn += hit is None
    return tp, len(found) - len(used), fn


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _build_set() -> tuple[list[dict], float]:
    """Write missing clips two at a time (encoding is the slow part), then the manifest."""
    from tests.support import videoset

    folder, size, codec = OUT / "videoset", (1280, 720), videoset.codec_available()
    t = time.perf_counter()
    missing = [c for c in videoset.clip_specs() if not videoset.clip_path(folder, c, size, codec).exists()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            jobs = [pool.submit(videoset.write_clip, c, videoset.clip_path(folder, c, size, codec), size, codec) for c in missing]
            for job in jobs:
                job.result()
    return videoset.build(folder, size, codec), time.perf_counter() - t


TOOLS = ("decode", "ours", "psd", "psd-adaptive")
LABELS = {"decode": "bare threaded PyAV decode", "ours": "ours (analyze_video)", "psd": "PySceneDetect ContentDetector",
          "psd-adaptive": "PySceneDetect AdaptiveDetector"}
CATEGORIES = {"hard cuts": ("cut",), "gradual (fades, dissolves)": ("fade", "dissolve"), "ALL": ("cut", "fade", "dissolve")}


def _accuracy(manifest: list[dict], runs: dict) -> dict:
    rows, sums = [], {(cat, tool): [0, 0, 0] for cat in CATEGORIES for tool in ("ours", "psd", "psd-adaptive")}
    for i, clip in enumerate(manifest):
        name = clip["name"] + ("" if clip["tuned"] else " (held out)")
        row = [name, str(len(clip["transitions"]))]
        for tool in ("ours", "psd", "psd-adaptive"):
            found = runs[(tool, 1)][i]["cuts"]
            for cat, kinds in CATEGORIES.items():
                counts = score(found, clip["transitions"], kinds)
                sums[(cat, tool)] = [a + b for a, b in zip(sums[(cat, tool)], counts, strict=True)]
            tp, fp, fn = score(found, clip["transitions"])
            row += [f"{prf(tp, fp, fn)[2]:.2f}", f"{fp}/{fn}"]
        rows.append(row)
    f1 = {}
    for cat in CATEGORIES:
        row = [cat, ""]
        for tool in ("ours", "psd", "psd-adaptive"):
            tp, fp, fn = sums[(cat, tool)]
            f1[(cat, tool)] = prf(tp, fp, fn)[2]
            row += [f"{f1[(cat, tool)]:.3f}", f"{fp}/{fn}"]
        rows.append(row)
    print("\nShots: transitions found (hard cut: +-1 frame; fade, dissolve: within its span +-1). Clips marked held out were "
          "never looked at while tuning services/analyze/shots.py; every other clip was tuned on.")
    print(table(rows, ["clip", "truth", "ours F1", "ours FP/FN", "Content F1", "Content FP/FN", "Adaptive F1", "Adaptive FP/FN"]))
    held = [i for i, c in enumerate(manifest) if not c["tuned"]]
    t = [0, 0, 0]
    for i in held:
        t = [a + b for a, b in zip(t, score(runs[("ours", 1)][i]["cuts"], manifest[i]["transitions"]), strict=True)]
    f1["held out"] = prf(*t)[2]
    return f1


def _kinds(manifest: list[dict], runs: dict) -> str:
    """How often a found transition has the kind of the truth it matched."""
    right = total = 0
    for i, clip in enumerate(manifest):
        for shot in runs[("ours", 1)][i]["shots"][1:]:
            frame = _nearest([round(t * 1000) for t in clip["pts"]], shot["start_ms"])
            truth = next((t for t in clip["transitions"] if t["start"] - TOLERANCE <= frame <= t["end"] + TOLERANCE), None)
            if truth is not None:
                total += 1
                right += shot["transition"]["kind"] == truth["kind"]
    return f"{right}/{total}"


def _times(manifest: list[dict], runs: dict) -> tuple[list[list[str]], bool]:
    """Every reported time against the PTS written (VFR and edit-list clips): worst error in frames."""
    rows, ok = [], True
    for i, clip in enumerate(manifest):
        if not (clip["vfr"] or clip["delay_s"]):
            continue
        pts = [t * 1000 for t in clip["pts"]]
        end = pts[-1] + 1000 / clip["fps"]
        frame_ms = min(b - a for a, b in zip(pts, pts[1:], strict=False))
        worst = 0.0
        res = runs[("ours", 1)][i]
        for shot in res["shots"]:
            tr = shot["transition"] or {}  # the first shot's is null: it begins with the video
            for t in (shot["start_ms"], shot["keyframe_ms"], *(tr[k] for k in ("start_ms", "end_ms") if k in tr)):
                worst = max(worst, min(abs(t - p) for p in [*pts, end]))
        exact = [s["start_ms"] for s in res["shots"][1:]]
        truth = [round(pts[t["start"]]) for t in clip["transitions"] if t["kind"] == "cut"]
        cut_err = max((min(abs(e - t) for e in exact) for t in truth), default=0.0)
        ok &= worst <= frame_ms / 2 and cut_err <= frame_ms / 2
        opencv_like = max((abs(pts[t["start"]] - t["start"] * 1000 / clip["fps"]) for t in clip["transitions"]), default=0.0)
        rows.append([clip["name"], f"{res['start_s']:.3f}", f"{worst:.2f}", f"{cut_err:.2f}", f"{frame_ms / 2:.1f}",
                     f"{opencv_like:.0f}"])
    return rows, ok


def _anamorphic(manifest: list[dict]) -> tuple[list[list[str]], bool]:
    """Render the anamorphic and rotated clips: every still and tile at the display aspect, +-1 %."""
    from services.analyze.video import analyze_video
    from services.render.presets import load
    from services.render.video import render_video

    cat, rows, ok = load(), [], True
    for clip in manifest:
        if not (clip["sar"] or clip["rotation"]):
            continue
        a = analyze_video(clip["path"], ".mp4", 1e9, 10**9)
        outputs, board = render_video(clip["path"], ".mp4", a, poster=cat.poster, still=cat.still, encoders=cat.encoders,
                                      tile_width=160, columns=10, interval_s=2.0, max_tiles=100, max_stills=50,
                                      storyboard_quality=75)
        want = clip["size"][0] / clip["size"][1]
        worst = max(abs(r.size[0] / r.size[1] / want - 1) for r in outputs)
        ok &= worst <= 0.01
        rows.append([clip["name"], f"{clip['sar'] or '-'}", str(clip["rotation"]), f"{a['width']}x{a['height']}",
                     f"{want:.4f}", f"{worst * 100:.2f} %", f"{board.tile[0]}x{board.tile[1]}"])
    return rows, ok


def video_bench() -> dict:
    manifest, built = _build_set()
    manifest_path = OUT / "videoset" / "videoset.json"
    seconds = sum(c["frames"] / c["fps"] for c in manifest)
    print(f"labelled set: {len(manifest)} clips, {sum(c['frames'] for c in manifest)} frames, {seconds:.0f} s of H.264 "
          f"(libx264 through PyAV; 1280x720 but the container-facts clips at 640x360), "
          f"{'built' if built > 2 else 'cached'} in {built:.1f} s")
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(REPEATS):
        for cores in (1, 2):
            for tool in TOOLS:
                new = _run("video", str(cores), tool, str(manifest_path))
                old = runs.setdefault((tool, cores), new)
                for a, b in zip(old, new, strict=True):
                    a["cpu"], a["wall"] = min(a["cpu"], b["cpu"]), min(a["wall"], b["wall"])
    with_filter = _run("video", "1", "ours-skip-loop-filter", str(manifest_path))
    same_cuts = all(a["cuts"] == b["cuts"] for a, b in zip(runs[("ours", 1)], with_filter, strict=True))
    keys = [(x["keyframe_ms"] == y["keyframe_ms"]) for a, b in zip(runs[("ours", 1)], with_filter, strict=True)
            for x, y in zip(a["shots"], b["shots"], strict=False)]

    f1 = _accuracy(manifest, runs)
    print(f"transition kind right (cut/fade/dissolve) on the matched ones: {_kinds(manifest, runs)}")
    skip_cpu = sum(r["cpu"] for r in with_filter) / sum(r["cpu"] for r in runs[("ours", 1)])
    print(f"with skip_loop_filter=all on H.264 (off in analyze): every clip's cuts unchanged: {'yes' if same_cuts else 'NO'}; "
          f"same keyframe: {sum(keys)}/{len(keys)} shots; CPU {skip_cpu:.2f}x of analyze's (one core)")
    rows, times_ok = _times(manifest, runs)
    print("\nReported times against the written PTS (ms); 'index/avg fps' is what frame index / average rate gives")
    print(table(rows, ["clip", "start_s", "worst |time - PTS|", "worst cut error", "half a frame", "index/avg fps error"]))
    rows, aspect_ok = _anamorphic(manifest)
    print("\nRenditions of the anamorphic and rotated clips: aspect against the display aspect")
    print(table(rows, ["clip", "SAR", "rotation", "analysed size", "display aspect", "worst still error", "tile"]))

    speed, rows = {}, []
    for tool in TOOLS:
        cpu1 = sum(r["cpu"] for r in runs[(tool, 1)])
        wall1 = sum(r["wall"] for r in runs[(tool, 1)])
        wall2 = sum(r["wall"] for r in runs[(tool, 2)])
        cpu2 = sum(r["cpu"] for r in runs[(tool, 2)])
        speed[tool] = {"cpu1": cpu1, "wall1": wall1, "wall2": wall2, "cpu2": cpu2}
        rows.append([LABELS[tool], f"{cpu1:.2f}", f"{seconds / wall1:.1f}x", f"{wall2:.2f}", f"{cpu2:.2f}",
                     f"{seconds / wall2:.1f}x"])
    print(f"\nSpeed over the whole set ({seconds:.0f} s of video); RTF = video seconds per wall second")
    print(table(rows, ["tool", "CPU s (1 core)", "RTF (1 core)", "wall s (2 cores)", "CPU s (2 cores)", "RTF (2 cores)"]))
    return {"f1": f1, "speed": speed, "same_cuts": same_cuts, "times_ok": times_ok, "aspect_ok": aspect_ok}


def image_bench() -> dict:
    from localcloud import samples

    OUT.mkdir(parents=True, exist_ok=True)
    paths = {}
    for mp, (w, h) in (("12", (4000, 3000)), ("24", (6000, 4000))):
        path = OUT / f"coffee-{mp}mp.jpg"
        if not path.exists():
            path.write_bytes(samples.large_jpeg(w, h))
        paths[mp] = path
    steps = _run("image", "1", str(paths["12"]))
    rows = [[name, f"{sec * 1000:.1f}"] for name, sec in steps.items()]
    print("\nImage analysis of a 12 MP JPEG (4000x3000), one core, median of", IMAGE_RUNS, "runs")
    print(table(rows, ["step", "ms"]))
    rss = {mp: _run("rss", "1", str(p)) for mp, p in paths.items()}
    rows = [[f"{mp} MP", f"{r['before_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['before_mb']:.0f}"]
            for mp, r in rss.items()]
    print("\nPeak RSS of a fresh process running analyze_image() once (VmHWM)")
    print(table(rows, ["JPEG", "after imports MB", "peak MB", "added by the analysis MB"]))
    return {"total_ms": steps["TOTAL analyze_image()"] * 1000, "naive_ms": steps["baseline: full decode + shrink"] * 1000,
            "rss24": rss["24"]["peak_mb"]}


def main() -> None:
    import av
    import cv2

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; OpenCV {cv2.__version__}, "
          f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    v = video_bench()
    im = image_bench()
    sp, f1 = v["speed"], v["f1"]
    goals = [
        ("F1 >= 0.95 on hard cuts", f"{f1[('hard cuts', 'ours')]:.3f}", f1[("hard cuts", "ours")] >= 0.95),
        ("F1 >= 0.85 counting gradual transitions", f"{f1[('ALL', 'ours')]:.3f} (held-out clips alone {f1['held out']:.3f})",
         f1[("ALL", "ours")] >= 0.85),
        ("F1 >= PySceneDetect Adaptive's, whole set", f"{f1[('ALL', 'ours')]:.3f} vs {f1[('ALL', 'psd-adaptive')]:.3f}",
         f1[("ALL", "ours")] >= f1[("ALL", "psd-adaptive")]),
        ("F1 >= PySceneDetect Content's, whole set", f"{f1[('ALL', 'ours')]:.3f} vs {f1[('ALL', 'psd')]:.3f}",
         f1[("ALL", "ours")] >= f1[("ALL", "psd")]),
    ]
    for cores in (1, 2):
        key = f"cpu{cores}"
        ratio = sp["ours"][key] / sp["decode"][key]
        goals.append((f"CPU <= 1.0x bare threaded PyAV decode ({cores} core{'s' * (cores > 1)})", f"{ratio:.2f}x", ratio <= 1.0))
        ratio = sp["ours"][key] / sp["psd"][key]
        goals.append((f"CPU <= 0.6x PySceneDetect Content ({cores} core{'s' * (cores > 1)})", f"{ratio:.2f}x", ratio <= 0.6))
    goals += [
        ("every reported time within half a frame of PTS (VFR, edit list)", "yes" if v["times_ok"] else "no", v["times_ok"]),
        ("anamorphic/rotated stills at the display aspect +-1 %", "yes" if v["aspect_ok"] else "no", v["aspect_ok"]),
        ("12 MP JPEG, faces included, <= 100 ms median (1 core)", f"{im['total_ms']:.1f} ms (naive decode alone "
         f"{im['naive_ms']:.0f} ms)", im["total_ms"] <= 100),
        ("peak RSS for a 24 MP JPEG <= 200 MB", f"{im['rss24']:.0f} MB", im["rss24"] <= 200),
    ]
    print("\nGoals")
    print(table([[g, val, "met" if ok else "MISSED"] for g, val, ok in goals], ["goal", "measured", "status"]))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        main()
