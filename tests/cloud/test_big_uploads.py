"""Big videos go in through a resumable session, up to MAX_VIDEO_UPLOAD_BYTES; images keep
MAX_SIGNED_UPLOAD_BYTES; `mediarelay submit` resumes after its connection is cut mid-upload.

A stack of its own with the limits lowered (direct 1 MiB, images 2 MiB, videos 8 MiB), so a
5 MB clip plays the part of a phone's multi-GB one. The cut happens in a proxy the CLI reaches
through HTTP_PROXY (tests/support/session_proxy.py, which also plays the status query GCS
answers and fake-gcs-server does not: see there)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from google.cloud import storage

from localcloud.stack import private_stack
from services.pipeline.jobstore import JobStore
from tests.support.session_proxy import CuttingSessionProxy
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

from .conftest import TEST_RETRY_BACKOFF

pytestmark = pytest.mark.cloud
MIB = 1024 * 1024
LIMITS = {"MAX_UPLOAD_BYTES": str(1 * MIB), "MAX_SIGNED_UPLOAD_BYTES": str(2 * MIB),
          "MAX_VIDEO_UPLOAD_BYTES": str(8 * MIB)}
CHUNK = 1 * MIB  # four of GCS's 256 KiB units


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    with private_stack(tmp_path_factory.mktemp("big"), "mediarelay-big", LIMITS, TEST_RETRY_BACKOFF) as cfg:
        yield cfg


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 s of 320x180 with sound at a high bitrate: ~5 MB, over the image limit, under the video one."""
    path = tmp_path_factory.mktemp("clip") / "family.mp4"
    shots = [ShotSpec("astronaut", 72, "pan", 2.0), ShotSpec("coffee", 72, "zoom", 0.3)]
    write_clip(ClipSpec("big-upload", shots, (320, 180), audio=True), path, (320, 180), preset="ultrafast", crf=4)
    assert 2 * MIB < path.stat().st_size < 8 * MIB
    return path


def _grant(cfg, content_type: str, size: int) -> requests.Response:
    return requests.post(f"{cfg.url('ingest')}/v1/upload-urls", timeout=10, headers={"Authorization": f"Bearer {cfg.api_key}"},
                         json={"content_type": content_type, "size": size, "resumable": True})


def _final(cfg, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = JobStore(cfg.project).get(job_id)
        if job and job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def test_a_video_over_the_image_limit_is_granted_up_to_the_video_limit(big):
    assert _grant(big, "video/mp4", 5 * MIB).status_code == 201
    over = _grant(big, "video/mp4", 8 * MIB + 1)
    assert over.status_code == 413 and "MAX_VIDEO_UPLOAD_BYTES" in over.json()["detail"]
    image = _grant(big, "image/jpeg", 2 * MIB + 1)
    assert image.status_code == 413 and "MAX_SIGNED_UPLOAD_BYTES" in image.json()["detail"]


def test_an_image_announced_as_a_video_keeps_the_image_limit_at_finalize(big):
    data = b"\xff\xd8\xff\xe0" + os.urandom(3 * MIB)  # JPEG bytes, 3 MiB: over the image limit
    grant = _grant(big, "video/mp4", len(data)).json()
    done = requests.put(grant["upload_url"], data=data, timeout=30,
                        headers={**grant["headers"], "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert done.status_code in (200, 201)
    job = _final(big, grant["job_id"], timeout=60)
    assert job["status"] == "failed" and "MAX_SIGNED_UPLOAD_BYTES" in job["error"]["reason"], job.get("error")


def test_submit_resumes_after_the_connection_is_cut_and_the_job_completes(big, clip):
    size = clip.stat().st_size
    proxy = CuttingSessionProxy(cut_after=2 * CHUNK + CHUNK // 2)  # mid-way through the third chunk
    env = {**os.environ, **big.client_env(), "MEDIARELAY_URL": big.url("ingest"), "MEDIARELAY_API_KEY": big.api_key,
           "HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
    try:
        run = subprocess.run([sys.executable, "-m", "services.cli", "submit", str(clip), "--chunk-bytes", str(CHUNK),
                              "--direct-max-bytes", str(1 * MIB)], capture_output=True, text=True, timeout=180, env=env)
    finally:
        proxy.close()
    assert run.returncode == 0, run.stderr
    assert proxy.cuts == 1 and proxy.queries == 1  # cut once; it asked the session where to go on
    assert f"connection lost; resuming at byte {2 * CHUNK} of {size}" in run.stderr
    assert proxy.chunk_starts == [0, CHUNK, 2 * CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK][:len(proxy.chunk_starts)]
    job_id = run.stdout.split("\t")[1]
    job = _final(big, job_id)
    assert job["status"] == "completed", job.get("error")
    source = job["source"]
    assert source["size"] == size and source["filename"] == "family.mp4"
    stored = storage.Client().bucket(source["bucket"]).blob(source["name"]).download_as_bytes()
    assert stored == clip.read_bytes()  # whole: no chunk lost, none stored twice
    assert job["video"]["hls"]["master"]["uri"] and job["video"]["mp4"]["uri"]
    listed = requests.get(f"{big.url('ingest')}/v1/jobs", params={"limit": 100}, timeout=10,
                          headers={"Authorization": f"Bearer {big.api_key}"}).json()["jobs"]
    assert [j["job_id"] for j in listed if j["source"].get("filename") == "family.mp4"] == [job_id]  # one job
