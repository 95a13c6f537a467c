"""The big-upload manual run (issue 23): a 1-2 GB 1080p source with sound goes in through
`mediarelay submit` over a resumable session, its connection cut once and resumed; the job must
complete with an HLS ladder and an MP4 as long as the source (within one frame), every service's
processes under 1 GB of RSS (ingest's under 300 MB), and no temp file of the source written.

    PYTHONPATH=. python -m bench bigupload
    BIGUPLOAD_SECONDS=90 BIGUPLOAD_CRF=12 (~1.4 GB) BIGUPLOAD_CHUNK_MIB=32 BIGUPLOAD_TIMEOUT=3600

The source is made with PyAV into /tmp/mediarelay-bigupload/ (kept there for the next run, never
committed); the stack part (a private local cloud) takes /tmp/mediarelay-stack.lock itself, so
making the source does not hold other users of the machine. The cut is made by the proxy of
tests/support/session_proxy.py, reached through HTTP_PROXY as any proxy would be. Measured: the
RSS of every process of each service's process group (gunicorn, nginx, the media children),
sampled every 0.5 s; fake-gcs-server is left out (it holds a resumable upload in memory, its own
limitation) and so is the proxy (the network). The services get a TMPDIR of their own, watched for
any file whose first bytes are the source's.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
from google.cloud import storage

from localcloud.processes import ProcessManager
from localcloud.stack import private_stack
from services.common.config import SERVICES
from services.pipeline.jobstore import JobStore
from tests.support.session_proxy import CuttingSessionProxy
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SECONDS = float(os.environ.get("BIGUPLOAD_SECONDS", "90"))
CRF = int(os.environ.get("BIGUPLOAD_CRF", "12"))
CHUNK = int(os.environ.get("BIGUPLOAD_CHUNK_MIB", "32")) * 2**20
TIMEOUT = float(os.environ.get("BIGUPLOAD_TIMEOUT", "3600"))
SIZE = (1920, 1080)
FPS = 24
WORK = Path("/tmp/mediarelay-bigupload")
LOCK = "/tmp/mediarelay-stack.lock"
HEAD = 4096
MB = 1e6


def make_source() -> Path:
    """~SECONDS of 1080p24 with an AAC track, panning and zooming over photos with film grain, x264
    ultrafast at a low CRF (a phone-like bitrate, ~130 Mb/s at CRF 12), an IDR every 2 s."""
    WORK.mkdir(exist_ok=True)
    path = WORK / f"source-{int(SECONDS)}s-crf{CRF}.mp4"
    if path.exists():
        return path
    photos = ["astronaut", "coffee", "rocket", "chelsea", "camera"]
    shots_n = max(1, int(SECONDS // 15))
    frames = int(SECONDS * FPS)
    shots = [ShotSpec(photos[i % len(photos)], frames // shots_n + (frames % shots_n if i == shots_n - 1 else 0),
                      "pan" if i % 2 == 0 else "zoom", 3.0 if i % 2 == 0 else 0.3) for i in range(shots_n)]
    t0 = time.monotonic()
    write_clip(ClipSpec("bigupload", shots, SIZE, audio=True), path, SIZE, preset="ultrafast", crf=CRF,
               keyframes_every_s=2.0)
    print(f"source made in {time.monotonic() - t0:.0f} s: {path} ({path.stat().st_size / MB:.0f} MB)", flush=True)
    return path


def video_seconds(path: Path) -> float:
    """The video stream's length as a player shows it: last frame's end minus the first frame's start."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        first, end = None, 0.0
        for p in c.demux(s):
            if p.pts is None:
                continue
            t = float(p.pts * s.time_base)
            first = t if first is None else min(first, t)
            end = max(end, t + float((p.duration or 0) * s.time_base))
    return end - (first or 0.0)


def hls_seconds(bucket: storage.Bucket, prefix: str) -> dict[str, float]:
    """Each media playlist's length: the sum of its EXTINF durations."""
    out = {}
    for blob in bucket.list_blobs(prefix=prefix):
        if blob.name.endswith(".m3u8") and not blob.name.endswith("master.m3u8"):
            text = blob.download_as_text()
            out[blob.name.removeprefix(prefix)] = sum(float(line.split(":")[1].split(",")[0])
                                                      for line in text.splitlines() if line.startswith("#EXTINF:"))
    return out


class Sampler:
    """RSS of every process in each service's process group, and files in the services' TMPDIR."""

    def __init__(self, pm: ProcessManager, tmpdir: Path, source_head: bytes):
        self.pm, self.tmpdir, self.head = pm, tmpdir, source_head
        self.peak_process: dict[str, tuple[int, str]] = {s: (0, "") for s in SERVICES}
        self.peak_group: dict[str, int] = {s: 0 for s in SERVICES}
        self.largest_tmp = 0
        self.source_copies: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            groups = {}
            for name in SERVICES:
                info = self.pm.running(name)
                if info:
                    groups[info["pid"]] = name
            totals = {s: 0 for s in SERVICES}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    pgrp = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
                    if pgrp not in groups:
                        continue
                    rss = next(int(line.split()[1]) * 1024 for line in (entry / "status").read_text().splitlines()
                               if line.startswith("VmRSS:"))
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:60]
                except (OSError, StopIteration, IndexError, ValueError):
                    continue
                service = groups[pgrp]
                totals[service] += rss
                if rss > self.peak_process[service][0]:
                    self.peak_process[service] = (rss, cmd)
            for s, total in totals.items():
                self.peak_group[s] = max(self.peak_group[s], total)
            self._watch_tmp()
            self.stop.wait(0.5)

    def _watch_tmp(self):
        for root, _, files in os.walk(self.tmpdir):
            for f in files:
                p = Path(root) / f
                try:
                    size = p.stat().st_size
                    self.largest_tmp = max(self.largest_tmp, size)
                    if size >= 64 and p.open("rb").read(min(HEAD, size)) == self.head[:min(HEAD, size)]:
                        self.source_copies.add(str(p))
                except OSError:
                    continue

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def run(source: Path) -> dict:
    size = source.stat().st_size
    head = source.open("rb").read(HEAD)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp, open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        services_tmp = Path(tmp) / "services-tmp"
        services_tmp.mkdir()
        env = {"TMPDIR": str(services_tmp)}
        with private_stack(Path(tmp) / "stack", "mediarelay-bigupload", env) as cfg:
            proxy = CuttingSessionProxy(cut_after=int(size * 0.4))
            cli_env = {**os.environ, **cfg.client_env(), "MEDIARELAY_URL": cfg.url("ingest"),
                       "MEDIARELAY_API_KEY": cfg.api_key, "HTTP_PROXY": proxy.url, "http_proxy": proxy.url,
                       "NO_PROXY": "", "no_proxy": ""}
            with Sampler(ProcessManager(cfg.state_dir), services_tmp, head) as sampler:
                t0 = time.monotonic()
                submit = subprocess.run([sys.executable, "-m", "services.cli", "submit", str(source),
                                         "--chunk-bytes", str(CHUNK)], capture_output=True, text=True, env=cli_env,
                                        timeout=TIMEOUT)
                uploaded_s = time.monotonic() - t0
                proxy.close()
                if submit.returncode:
                    raise SystemExit(f"submit failed: {submit.stderr}")
                job_id = submit.stdout.split("\t")[1]
                store, job = JobStore(cfg.project), None
                while time.monotonic() - t0 < TIMEOUT:
                    job = store.get(job_id)
                    if job and job["status"] in ("completed", "failed"):
                        break
                    time.sleep(1)
                done_s = time.monotonic() - t0
            assert job is not None
            result = {"source_bytes": size, "source_video_s": video_seconds(source), "upload_s": round(uploaded_s, 1),
                      "job_s": round(done_s, 1), "status": job["status"], "error": job.get("error"),
                      "cuts": proxy.cuts, "status_queries": proxy.queries,
                      "resume_notice": [line for line in submit.stderr.splitlines() if "resuming" in line],
                      "peak_process_mb": {s: [round(v / MB), cmd] for s, (v, cmd) in sampler.peak_process.items()},
                      "peak_service_mb": {s: round(v / MB) for s, v in sampler.peak_group.items()},
                      "largest_tmp_file_mb": round(sampler.largest_tmp / MB, 1),
                      "tmp_files_with_source_head": sorted(sampler.source_copies)}
            if job["status"] == "completed":
                client = storage.Client(project=cfg.project)
                src = job["source"]
                original = client.bucket(src["bucket"]).get_blob(src["name"])
                result["original_whole"] = original is not None and original.size == size
                video = job["video"]
                bucket = client.bucket(video["hls"]["master"]["uri"].removeprefix("gs://").split("/")[0])
                result["hls_s"] = hls_seconds(bucket, f"renditions/{job_id}/hls/")
                mp4 = Path(tmp) / "out.mp4"
                name = video["mp4"]["uri"].removeprefix("gs://").split("/", 1)[1]
                bucket.blob(name).download_to_filename(str(mp4))
                result["mp4_video_s"] = video_seconds(mp4)
                frame = 1 / FPS
                result["within_one_frame"] = all(abs(v - result["source_video_s"]) <= frame
                                                 for v in [result["mp4_video_s"], *result["hls_s"].values()])
    return result


def main() -> None:
    source = make_source()
    result = run(source)
    print(json.dumps(result, indent=2))
    ok = (result["status"] == "completed" and result["cuts"] == 1 and result.get("within_one_frame")
          and result["peak_service_mb"]["ingest"] < 300 and max(v for v, _ in result["peak_process_mb"].values()) < 1000
          and not result["tmp_files_with_source_head"])
    print("bigupload:", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
