"""Memory and child-process bench (issue 10): `python -m bench memory`.

1. Peak RSS above the process baseline, per megapixel, of one analysis and one render job on opaque 8-bit,
   alpha, 16-bit and animated inputs (tests/bombs.py makes them, deflated row by row), and
   of the 24 MP photo mosaic. Each measurement runs in a fresh process
   (`python -m bench.memory_bench worker KIND SIZE`): VmHWM after the job minus VmRSS after
   the imports and the input read. Goal: <= 0.1 GB per 100 MP (1 B/px) for stills.
   MEMORY_BENCH_ROOT=/path/to/an/older/checkout runs the same worker on that code (before/after);
   MEMORY_BENCH_CASES=alpha8,mosaic runs only those; MEMORY_BENCH_TIMEOUT (300 s) per run.
2. The bounded child's overhead per job (fork from the forkserver, bytes over the pipe,
   renditions back) against the same 12 MP render run in-process, as a ratio.
"""
from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out" / "memory"
CASES = (  # kind, megapixels
    ("opaque8", 100), ("alpha8", 100), ("rgb16", 100), ("alpha16", 100), ("gif-canvas", 16), ("webp-canvas", 100),
    ("mosaic", 24),
)


def make_input(kind: str, mp: int) -> bytes:
    sys.path.insert(0, str(ROOT))
    from tests.support import bombs

    side = int((mp * 1_000_000) ** 0.5)
    if kind == "opaque8":
        return bombs.big_png(side, side)
    if kind == "alpha8":
        return bombs.big_png(side, side, alpha=True)
    if kind == "rgb16":
        return bombs.big_png(side, side, depth=16)
    if kind == "alpha16":
        return bombs.big_png(side, side, alpha=True, depth=16)
    if kind == "gif-canvas":
        return bombs.many_frame_gif(10_000, (side, side))
    if kind == "webp-canvas":
        return bombs.big_canvas_webp(1000, (10000, 9999))
    if kind == "mosaic":
        from bench.render_inputs import mosaic

        buf = io.BytesIO()
        mosaic(6000, 4000).save(buf, "JPEG", quality=92)
        return buf.getvalue()
    raise ValueError(kind)


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def worker_analyze(path: str) -> None:
    """In a fresh process: one analysis, in-process."""
    raw = Path(path).read_bytes()
    from services.analyze.image import analyze_image

    base = _status("VmRSS")
    t = time.perf_counter()
    a = analyze_image(raw, 10**8)
    print(json.dumps({"peak_above_base": _status("VmHWM") - base, "base": base, "pixels": a["width"] * a["height"],
                      "seconds": time.perf_counter() - t}))


def worker(path: str) -> None:
    """In a fresh process, on whatever code is first on sys.path: one render, in-process."""
    raw = Path(path).read_bytes()
    from PIL import Image

    from services.render.animated import is_animated, render_animated
    from services.render.decode import orientation_of, upright_size
    from services.render.image import render_image
    from services.render.presets import load

    Image.MAX_IMAGE_PIXELS = None
    im = Image.open(io.BytesIO(raw))
    w, h = upright_size(im, orientation_of(im))
    analysis = {"width": w, "height": h}
    cat = load()
    kw = dict(encoders=cat.encoders, max_pixels=10**8, background=(255, 255, 255))
    base = _status("VmRSS")
    t = time.perf_counter()
    if is_animated(raw, 10**8):
        out, _ = render_animated(raw, analysis, cat.image_presets, **kw, poster=cat.animated_poster, max_frames=300,
                                 max_anim_pixels=25_000_000)
    else:
        out, _ = render_image(raw, analysis, cat.image_presets, **kw)
    print(json.dumps({"peak_above_base": _status("VmHWM") - base, "base": base, "pixels": w * h,
                      "seconds": time.perf_counter() - t, "renditions": len(out)}))


TIMEOUT = int(os.environ.get("MEMORY_BENCH_TIMEOUT", "300"))  # the "before" GIF walks 10 000 canvases (~38 min)
CAP_BYTES = 8 * 2**30  # a runaway "before" must not take the shared machine's memory with it


def _cap_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))


def measure(kind: str, mp: int, root: Path, stage: str = "render") -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{kind}-{mp}.bin"
    if not path.exists():
        path.write_bytes(make_input(kind, mp))
    env = {**os.environ, "PYTHONPATH": str(root)}  # `services` from `root`; this file run as a script
    try:
        mode = "worker" if stage == "render" else "worker-analyze"
        done = subprocess.run([sys.executable, __file__, mode, str(path)], capture_output=True, text=True, env=env,
                              cwd=root, timeout=TIMEOUT, check=False, preexec_fn=_cap_address_space)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {TIMEOUT} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"error": f"over the bench's 8 GiB address-space cap ({last})" if "Memory" in last else last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_overhead(reps: int = 5) -> dict:
    """The same 12 MP render in-process and through sandbox.run: the difference is the child's cost."""
    sys.path.insert(0, str(ROOT))
    from bench.render_inputs import mosaic
    from services.common.config import Settings
    from services.media import sandbox
    from services.media.budget import Budget
    from services.render.presets import load
    from services.render.work import RenderOptions, render_media

    buf = io.BytesIO()
    mosaic(4240, 2832).save(buf, "JPEG", quality=92)
    raw = buf.getvalue()
    opts = RenderOptions.build(Settings.from_env(), load())
    analysis = {"width": 4240, "height": 2832}
    sandbox.preload(["services.render.work"])
    limits = sandbox.ChildLimits(2**31, 600, time.monotonic() + 3600, "bench")
    sandbox.run(len, b"warm", limits=limits)  # the forkserver starts once per process, not per job
    inproc, child, noop = [], [], []
    for _ in range(reps):
        t = time.perf_counter()
        render_media(raw, kind="image", suffix=".jpg", analysis=analysis, opts=opts, budget=Budget.unlimited())
        inproc.append(time.perf_counter() - t)
        t = time.perf_counter()
        sandbox.run(render_media, raw, "image", ".jpg", analysis, opts, Budget.unlimited(), limits=limits)
        child.append(time.perf_counter() - t)
        t = time.perf_counter()
        sandbox.run(len, raw, limits=limits)
        noop.append(time.perf_counter() - t)
    a, b, n = statistics.median(inproc), statistics.median(child), statistics.median(noop)
    return {"in_process_s": a, "in_child_s": b, "spawn_and_handoff_s": n, "overhead_ratio": (b - a) / a,
            "spawn_ratio": n / a}


def main() -> None:
    before = os.environ.get("MEMORY_BENCH_ROOT")
    roots = [("after", ROOT)] + ([("before", Path(before))] if before else [])
    print(f"load {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| input | MP | stage | code | peak above baseline (MB) | bytes per source pixel | seconds |")
    print("|---|---|---|---|---|---|---|")
    only = [c for c in os.environ.get("MEMORY_BENCH_CASES", "").split(",") if c]
    for kind, mp in CASES:
        if only and kind not in only:
            continue
        for stage in ("analyze", "render"):
            for label, root in roots:
                r = measure(kind, mp, root, stage)
                if "error" in r:
                    print(f"| {kind} | {mp} | {stage} | {label} | failed: {r['error']} | | |", flush=True)
                    continue
                print(f"| {kind} | {mp} | {stage} | {label} | {r['peak_above_base'] / 2**20:.0f} | "
                      f"{r['peak_above_base'] / r['pixels']:.2f} | {r['seconds']:.1f} |", flush=True)
    c = child_overhead()
    print(f"\nbounded child, 12 MP render (median of 5): in-process {c['in_process_s']:.3f} s, in the child "
          f"{c['in_child_s']:.3f} s: overhead {c['overhead_ratio']:+.1%}; spawn + handoff alone "
          f"{c['spawn_and_handoff_s'] * 1000:.1f} ms = {c['spawn_ratio']:.1%} of the render")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])
    elif sys.argv[1:2] == ["worker-analyze"]:
        worker_analyze(sys.argv[2])
    else:
        main()
