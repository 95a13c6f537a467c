"""Render bench: the full default preset set, ours against (a) naive Pillow and (b) a pyvips chain.

Per input: median wall time of the whole job, its decode+resize and encode parts, ratios,
peak RSS, bytes and SSIM per rendition; then an encoder-effort table from which the defaults
in services/render/presets.json are chosen. Each method runs in its own fresh process
(bench/render_worker.py): peak RSS is then its own, and pyvips' bundled codecs never share a
process with Pillow's. Timings are ratios within one run; the machine's load is printed.
`RENDER_BENCH_REPS` (default 2, to keep `make bench` within ~3 minutes) sets the repetitions.
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

from PIL import Image

from .render_inputs import write_inputs
from .render_quality import Reference, luma, ssim

OUT = Path(__file__).parent / "out" / "render"
METHODS = (("naive", "(a) naive Pillow"), ("pyvips", "(b) pyvips chain"), ("ours", "ours"))
CROPPED = ("thumb-256", "thumb-128")
EXT = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def run_worker(method: str, path: Path, reps: int) -> dict:
    outdir = OUT / "renditions" / method / path.name
    cmd = [sys.executable, "-m", "bench.render_worker", method, str(path), str(outdir), str(reps)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{method} on {path.name} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["dir"] = outdir
    return result


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) + " |"

    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def score(results: dict, ref: Reference) -> tuple[dict, dict]:
    """SSIM against the reference of every encoded rendition, and of every resize before encoding."""
    encoded, resized = {}, {}
    for method, res in results.items():
        for key in res["bytes"]:
            preset, fmt = key.rsplit(".", 1)
            data = (res["dir"] / f"{preset}.{EXT[fmt]}").read_bytes()
            encoded[(method, key)] = ref.score(data, preset in CROPPED)
            if (method, preset) not in resized:
                resized[(method, preset)] = ref.score_file(res["dir"] / f"{preset}.resized.png", preset in CROPPED)
    return encoded, resized


def bench_input(path: Path, reps: int, single_thread_row: bool = False) -> dict:
    methods = METHODS + ((("ours-1thread", "ours, 1 encode thread"),) if single_thread_row else ())
    results = {m: run_worker(m, path, reps) for m, _ in methods}
    ssims, resized = score(results, Reference(path.read_bytes()))
    im = Image.open(path)
    a, b, o = results["naive"], results["pyvips"], results["ours"]
    rows = []
    for m, label in methods:
        r = results[m]
        mins = min(v for (mm, _), v in ssims.items() if mm == m)
        min_resized = min(v for (mm, _), v in resized.items() if mm == m)
        rows.append([
            label, f"{r['whole_ms']:.0f}", f"{r['resize_ms']:.0f}", f"{r['encode_ms']:.0f}",
            f"{r['whole_ms'] / a['whole_ms']:.2f}", f"{r['whole_ms'] / b['whole_ms']:.2f}",
            f"{a['resize_ms'] / r['resize_ms']:.1f}x", f"{r['rss_mb']:.0f} ({r['rss_mb'] - r['base_mb']:.0f})",
            f"{sum(r['bytes'].values()) / 1e6:.2f}",
            f"{min_resized:.4f}", f"{mins:.4f}",
        ])
    print(f"\n{path.name}: {im.width}x{im.height} stored, {path.stat().st_size / 1e6:.1f} MB; median of {reps}; load {load()}")
    print(table(rows, ["method", "whole ms", "decode+resize ms", "encode ms", "whole/(a)", "whole/(b)",
                       "d+r speed-up vs (a)", "peak RSS MB (above imports)", "total MB", "min SSIM resized", "min SSIM encoded"]))
    per = []
    for key in o["bytes"]:
        preset = key.rsplit(".", 1)[0]
        per.append([key, a["bytes"][key], b["bytes"][key], o["bytes"][key], f"{o['bytes'][key] / b['bytes'][key] - 1:+.1%}",
                    *(f"{resized[(m, preset)]:.4f}" for m, _ in METHODS), *(f"{ssims[(m, key)]:.4f}" for m, _ in METHODS)])
    print(table(per, ["rendition", "bytes (a)", "bytes (b)", "bytes ours", "ours vs (b)",
                      "SSIM resized (a)", "(b)", "ours", "SSIM encoded (a)", "(b)", "ours"]))
    return {"results": results, "ssims": ssims}


def _median_ms(fn, reps: int) -> tuple[float, bytes]:
    times, data = [], b""
    for _ in range(reps):
        t = time.perf_counter()
        data = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), data


def effort_table(path: Path) -> None:
    """Encoder effort vs time, bytes and SSIM, on our long-2048 rendition of the 12 MP input."""
    from services.render.formats import SRGB_PROFILE
    from services.render.image import frames
    from services.render.presets import load as load_presets

    from .render_worker import analysis_for

    raw = path.read_bytes()
    cat = load_presets()
    chain, _ = frames(raw, analysis_for(raw), cat.image_presets, 10**8)
    arr = next(a for st, a in chain if st.preset.name == "long-2048")
    im = Image.fromarray(arr)
    ref = Reference(raw).get(im.size, False)
    q = cat.image_presets[1].formats

    def enc(fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        im.save(buf, fmt, icc_profile=SRGB_PROFILE, **kw)
        return buf.getvalue()

    trials = [("JPEG", f"q{q['jpeg']} baseline", {"quality": q["jpeg"]}),
              ("JPEG", f"q{q['jpeg']} optimize", {"quality": q["jpeg"], "optimize": True}),
              ("JPEG", f"q{q['jpeg']} optimize+progressive", {"quality": q["jpeg"], "optimize": True, "progressive": True})]
    trials += [("WEBP", f"q{q['webp']} method {m}", {"quality": q["webp"], "method": m}) for m in range(7)]
    trials += [("AVIF", f"q{q['avif']} speed {s}", {"quality": q["avif"], "speed": s}) for s in (6, 7, 8, 9, 10)]
    rows = []
    for fmt, label, kw in trials:
        slow = fmt == "AVIF" and kw["speed"] < 7  # speed 5 and below: 4-10x the time of 6 for < 0.3 % bytes
        ms, data = _median_ms(lambda fmt=fmt, kw=kw: enc(fmt, **kw), 1 if slow else 3)
        quality = ssim(luma(Image.open(io.BytesIO(data))), ref)
        rows.append([f"{fmt.lower()} {label}", f"{ms:.0f}", len(data), f"{quality:.4f}"])
    print(f"\nencoder effort on the long-2048 rendition ({im.width}x{im.height}) of {path.name}; load {load()}")
    print(table(rows, ["encoder setting", "ms", "bytes", "SSIM"]))


def main() -> None:
    reps = int(os.environ.get("RENDER_BENCH_REPS", "2"))
    started = time.monotonic()
    inputs = write_inputs(OUT)
    print(f"render bench: {os.cpu_count()} cores, load {load()}; inputs in {OUT}")
    print("whole/(x) < 1 means faster than the baseline; SSIM on luma vs a one-step Lanczos-3 resize of the full original,")
    print("'resized' = the pixels before encoding (the resize alone), 'encoded' = the rendition as written (codec loss included)")
    for name in ("12mp.jpg", "24mp.jpg", "12mp-rot6.jpg", "12mp.png"):
        bench_input(inputs[name], reps, single_thread_row=name == "24mp.jpg")
    effort_table(inputs["12mp.jpg"])
    print(f"\nrender bench took {time.monotonic() - started:.0f} s")
