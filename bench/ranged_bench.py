"""Ranged reads of a video source: one segment's worker on a short source and on a source ten
times longer (same resolution and bitrate: the long one is the short one's packets repeated,
no re-encode), each stored in fake-gcs-server and read through BlobStore.open_ranged, as the
stages do. Reported per source: bytes fetched from storage, bytes the child read, and the
child's peak RSS, for a 30 s segment in the middle (analysis of the span, in the bounded child).

    PYTHONPATH=. python -m bench ranged        # RANGED_SHORT_S=60 RANGED_TIMES=10 RANGED_SIZE=1280x720 RANGED_CRF=23

The issue's figure (a 400 MB and a 4 GB source of the same resolution) is this bench at high bitrate:
    RANGED_SIZE=1920x1080 RANGED_CRF=17 RANGED_SHORT_S=46 python -m bench ranged
(a ~400 MB and a ~4 GB source: ~4.4 GB of temporary files; the defaults stay small so `make bench` stays quick).
"""
from __future__ import annotations

import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import av

from localcloud.stack import lone_emulator
from services.analyze.segmented import analyze_span
from services.media import sandbox
from services.media.rangefile import RangeSource
from services.media.video import VideoLimits
from services.pipeline.blobs import BlobStore
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SHORT_S = float(os.environ.get("RANGED_SHORT_S", "60"))
TIMES = int(os.environ.get("RANGED_TIMES", "10"))
SPAN_S = 30.0
BLOCK_BYTES, BLOCKS = 2**20, 16  # the defaults of SOURCE_READ_BLOCK_BYTES, SOURCE_READ_CACHE_BLOCKS
SIZE = tuple(int(n) for n in os.environ.get("RANGED_SIZE", "1280x720").split("x"))
CRF = int(os.environ.get("RANGED_CRF", "23"))
PROJECT = "mediarelay-ranged-bench"
BUCKET = "ranged-bench"


def _short_clip(path: Path) -> None:
    frames = int(SHORT_S * 24)
    shots = ["astronaut", "coffee", "rocket", "chelsea", "camera"]
    spec = ClipSpec("ranged-bench", [ShotSpec(shots[i % len(shots)], frames // 5, "pan", 3) for i in range(5)], SIZE,
                    audio=True)
    write_clip(spec, path, SIZE, keyframes_every_s=2.0, preset="ultrafast", crf=CRF)


def _repeated(src: Path, dst: Path, times: int) -> None:
    """`src`'s packets `times` over, timestamps shifted: the same stream, `times` as long."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        span = {s.index: int((inp.duration / 1e6) / s.time_base) for s in inp.streams if s.index in streams}
        for k in range(times):
            inp.seek(0)
            for packet in inp.demux(*[inp.streams[i] for i in streams]):
                if packet.dts is None:
                    continue
                packet.pts = packet.pts + k * span[packet.stream.index] if packet.pts is not None else None
                packet.dts = packet.dts + k * span[packet.stream.index]
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def _segment(_raw: bytes, source, start_s: float, end_s: float) -> dict:
    """In the child: the span's analysis, and the child's own peak RSS."""
    result = analyze_span(source, start_s, end_s, 3.0, VideoLimits(36000, 10**9))
    return {"shots": len(result.get("shots", [])), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _measure(blobs: BlobStore, name: str, middle_s: float) -> dict:
    file, size = blobs.open_ranged(BUCKET, name, None, BLOCK_BYTES, BLOCKS)
    served: list[int] = []
    t0 = time.monotonic()
    with file:
        limits = sandbox.ChildLimits(2 * 2**30, 600, time.monotonic() + 600, "the bench's deadline")
        out = sandbox.run(_segment, b"", RangeSource(size), middle_s - SPAN_S / 2, middle_s + SPAN_S / 2, limits=limits,
                          source=file, served=served)
        fetched = file.fetched
    return {"size": size, "fetched": fetched, "served": served[0], "peak_rss": out["peak_rss"],
            "seconds": time.monotonic() - t0}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The sources are handed to fake-gcs-server at start (-data: bucket/object files), not uploaded:
        # it holds a resumable upload in memory, and a 4 GB one ends it.
        data = folder / "data"
        (data / BUCKET).mkdir(parents=True)
        short, long = data / BUCKET / "short.mp4", data / BUCKET / "long.mp4"
        _short_clip(short)
        _repeated(short, long, TIMES)
        with lone_emulator(folder / "state", PROJECT, "gcs", "-data", str(data)):
            blobs = BlobStore(PROJECT)
            rows = {"short": _measure(blobs, short.name, SHORT_S / 2), "long": _measure(blobs, long.name, SHORT_S * TIMES / 2)}
    mib = 2**20
    print(f"one {SPAN_S:g} s segment (analysis, bounded child) of a {SIZE[0]}x{SIZE[1]} source, read by ranges from "
          "fake-gcs-server")
    print(f"{'source':>8} {'size MiB':>9} {'fetched MiB':>12} {'child read MiB':>15} {'child peak RSS MiB':>19} {'s':>6}")
    for label, r in rows.items():
        print(f"{label:>8} {r['size'] / mib:9.1f} {r['fetched'] / mib:12.1f} {r['served'] / mib:15.1f} "
              f"{r['peak_rss'] / mib:19.0f} {r['seconds']:6.1f}")
    s, lg = rows["short"], rows["long"]
    print(f"long/short: size {lg['size'] / s['size']:.1f}x, fetched {lg['fetched'] / s['fetched']:.2f}x, "
          f"child peak RSS {lg['peak_rss'] / s['peak_rss']:.2f}x")


if __name__ == "__main__":
    main()
