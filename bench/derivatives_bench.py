"""Derivative images (issue 24): memory on big stills, the render step against plain libvips, the whole miss.

1. 100 MP JPEG and PNG -> 800 px WebP, each method in a fresh process (peak RSS its own, imports
   included, as a forked media child holds them): ours (services/render/derive.py, the child's
   function) beside plain `pyvips.Image.thumbnail`, Pillow at its most frugal (draft + thumbnail),
   and the presets' Pillow/OpenCV chain. Goal: ours <= 150 MB.
2. 12 MP JPEG -> 800 px WebP, in one process, alternating, libvips' operation cache off: our
   render step (decode, resize, encode; as chosen, and pinned to libvips) against `pyvips
   thumbnail` + the same webpsave. 2b: both decoders over source sizes (decoder_for's rule). Goals:
   <= 1.1x its time, bytes within +-5 % at equal SSIM (SSIM on luma against a Lanczos resize of
   the full original, bench/render_quality.py).
3. The whole miss against a local stack (ingest under gunicorn behind nginx, the media child,
   fake-gcs-server reads and writes): p50/p95 of N distinct misses, then of the same N as hits.
   An emulator figure: GCS on this machine, no network.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.render_inputs import mosaic, write_inputs
from bench.render_quality import Reference

OUT = Path(__file__).parent / "out"
REPS = int(os.environ.get("DERIVATIVES_BENCH_REPS", "15"))
N = int(os.environ.get("DERIVATIVES_BENCH_N", "20"))
WIDTH = 800


def big_inputs() -> dict[str, Path]:
    """100 MP (12000 x 8400) mosaic as JPEG q90 and PNG, made once and kept in bench/out."""
    paths = {"100mp.jpg": OUT / "100mp.jpg", "100mp.png": OUT / "100mp.png"}
    if not all(p.exists() for p in paths.values()):
        im = mosaic(12000, 8400, seed=11)
        im.save(paths["100mp.jpg"], "JPEG", quality=90)
        im.save(paths["100mp.png"], "PNG", compress_level=1)
    return paths


def worker(method: str, source: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bench.derivatives_worker", method, str(source), str(out), str(WIDTH)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_table() -> None:
    print(f"1. 100 MP -> {WIDTH} px WebP q80, one fresh process per row (peak RSS includes the interpreter and imports)")
    for name, path in big_inputs().items():
        print(f"  {name} ({path.stat().st_size / 2**20:.0f} MiB)")
        for method in ("ours", "ours-libvips", "ours-pillow", "vips-thumbnail", "pillow"):
            r = worker(method, path, OUT / f"deriv-{method}-{name}.webp")
            if "error" in r:
                print(f"    {method:<15} failed: {r['error']}")
                continue
            print(f"    {method:<14} peak RSS {r['rss_mb']:7.0f} MB   {r['ms']:7.0f} ms   {r['bytes']:7d} B   {r['size']}")


def render_step_table() -> None:
    import pyvips

    from bench.derivatives_worker import ours, ours_libvips, vips_thumbnail

    pyvips.cache_set_max(0)  # every repetition decodes again, as every miss does
    path = str(write_inputs(OUT)["12mp.jpg"])
    methods = (("ours", ours), ("ours-libvips", ours_libvips), ("vips-thumbnail", vips_thumbnail))
    times: dict[str, list[float]] = {name: [] for name, _ in methods}
    out: dict[str, bytes] = {}
    for _ in range(REPS):
        for name, fn in methods:
            started = time.perf_counter()
            out[name] = fn(path, WIDTH)[0]
            times[name].append(time.perf_counter() - started)
    ref = Reference(Path(path).read_bytes())
    base = statistics.median(times["vips-thumbnail"])
    print(f"2. 12 MP JPEG -> {WIDTH} px WebP q80, {REPS} alternating runs, median (load {os.getloadavg()[0]:.1f})")
    for name in times:
        med = statistics.median(times[name])
        print(f"    {name:<15} {med * 1000:7.1f} ms  x{med / base:5.2f}   {len(out[name]):7d} B "
              f"({len(out[name]) / len(out['vips-thumbnail']) - 1:+.1%})   SSIM {ref.score(out[name], False):.4f}")


def decoder_table() -> None:
    """What decoder_for rests on: the two decoders on sources of several sizes, same output."""
    import pyvips

    from bench.derivatives_worker import ours_libvips, ours_pillow

    pyvips.cache_set_max(0)
    inputs = write_inputs(OUT)
    for name, size in (("1mp.jpg", (1200, 800)), ("6mp.jpg", (3000, 2000)), ("1mp.png", (1200, 800))):
        if not (OUT / name).exists():
            mosaic(*size, seed=3).save(OUT / name, quality=90)  # quality is ignored by the PNG writer
    print(f"2b. decoder choice: {WIDTH} px WebP q80, median of 5 in one process (load {os.getloadavg()[0]:.1f})")
    for name in ("1mp.jpg", "6mp.jpg", "12mp.jpg", "24mp.jpg", "1mp.png", "12mp.png"):
        path = str(inputs.get(name, OUT / name))
        med = {}
        for label, fn in (("libvips", ours_libvips), ("pillow", ours_pillow)):
            xs = []
            for _ in range(5):
                started = time.perf_counter()
                fn(path, WIDTH)
                xs.append(time.perf_counter() - started)
            med[label] = statistics.median(xs) * 1000
        print(f"    {name:<9} libvips {med['libvips']:7.1f} ms   Pillow/OpenCV chain {med['pillow']:7.1f} ms")


def _row(name: str, xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=20)
    return f"    {name:<8} p50 {statistics.median(xs) * 1000:7.1f} ms   p95 {q[18] * 1000:7.1f} ms   max {max(xs) * 1000:7.1f} ms"


def whole_miss_table() -> None:
    from localcloud.stack import private_stack
    from services.client import auth_headers
    from services.ingest import derivative_url as du

    raw = write_inputs(OUT)["12mp.jpg"].read_bytes()
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-derivatives") as cfg:
        ingest, auth = cfg.url("ingest"), auth_headers(cfg.api_key)
        job_id = requests.post(f"{ingest}/v1/uploads", data=raw, headers={"Content-Type": "image/jpeg", **auth},
                               timeout=60).json()["job_id"]
        deadline = time.monotonic() + 300
        while requests.get(f"{ingest}/v1/jobs/{job_id}", headers=auth, timeout=10).json()["status"] != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.5)
        keys = requests.get(f"{ingest}/v1/signing-keys", headers=auth, timeout=10).json()
        key = next(k for k in keys["keys"] if k["current"])
        urls = [ingest + du.signed_path(key["kid"], keys["client_id"], key["secret"], f"w:{WIDTH}/q:{60 + i}/format:webp",
                                        job_id) for i in range(N)]
        figures = {}
        for label in ("miss", "hit"):
            xs = []
            for url in urls:
                started = time.perf_counter()
                resp = requests.get(url, timeout=60)
                xs.append(time.perf_counter() - started)
                assert resp.status_code == 200, resp.text[:200]
            figures[label] = xs
    print(f"3. whole request, 12 MP JPEG -> {WIDTH} px WebP, {N} distinct URLs (local stack: emulator figure)")
    for label, xs in figures.items():
        print(_row(label, xs))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    only = os.environ.get("DERIVATIVES_BENCH_ONLY", "1,2,2b,3").split(",")  # e.g. "1" for the memory table alone
    for key, table in (("1", memory_table), ("2", render_step_table), ("2b", decoder_table), ("3", whole_miss_table)):
        if key in only:
            table()


if __name__ == "__main__":
    main()
