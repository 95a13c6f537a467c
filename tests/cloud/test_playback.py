"""Private playback end to end: a video job, a playback token, every playlist from our route and
every child from the (verifying) storage front, and ffmpeg (PyAV) playing the whole ladder."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import av
import pytest
import requests

from localcloud import samples
from localcloud.stack import local_playback_keys
from services.common.config import REPO_ROOT, _keyring
from services.ingest import playback_token

from .conftest import wait_for_status

SECONDS, FPS = 12.0, 24


@pytest.fixture(scope="module")
def video_job(http, ingest_url, tmp_path_factory):
    data = samples.video_mp4(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=SECONDS, fps=FPS)
    resp = http.post(f"{ingest_url}/v1/uploads", data=data, headers={"Content-Type": "video/mp4"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_status(http, ingest_url, resp.json()["job_id"], timeout=150)
    assert job["status"] == "completed", job
    return job


@pytest.fixture(scope="module")
def grant(http, ingest_url, video_job) -> dict:
    resp = http.post(f"{ingest_url}/v1/jobs/{video_job['job_id']}/playback", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.json()


def _uris(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_the_token_url_plays_every_rung_from_a_private_bucket(grant, video_job, stack):
    master_url = grant["playback_url"]
    master = requests.get(master_url, timeout=10)  # no API key: the token is the credential
    assert master.status_code == 200 and master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    max_age = int(master.headers["Cache-Control"].removeprefix("private, max-age="))
    assert 0 < max_age <= 4 * 3600
    variants = _uris(master.text)
    assert len(variants) == len(video_job["video"]["ladder"]) >= 2
    fetched = 0
    for variant in variants:
        media = requests.get(urllib.parse.urljoin(master_url, variant), timeout=10)
        assert media.status_code == 200 and media.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        for seg in _uris(media.text):
            assert seg.startswith(stack.url("storage") + "/"), seg  # the verifying front, not fake-gcs-server
            got = requests.get(seg, timeout=10)
            assert got.status_code == 200 and got.headers["Content-Type"] == "video/mp2t" and got.content[0] == 0x47
            fetched += 1
        # The same child unsigned is refused, as a private bucket would.
        assert requests.get(_uris(media.text)[0].split("?")[0], timeout=10).status_code == 403
    assert fetched >= 2 * len(variants)

    vtt = requests.get(grant["storyboard_url"], timeout=10)
    assert vtt.status_code == 200 and vtt.headers["Content-Type"].startswith("text/vtt")
    sprites = {ln.split("#xywh=")[0] for ln in vtt.text.splitlines() if "#xywh=" in ln}
    assert len(sprites) == 1
    sprite = requests.get(sprites.pop(), timeout=10)
    assert sprite.status_code == 200 and sprite.headers["Content-Type"] == "image/jpeg"


def test_ffmpeg_reads_the_whole_ladder_from_the_token_url(grant, video_job):
    """PyAV (FFmpeg's HLS demuxer) as the client: every variant, every packet, the source's duration."""
    spans: dict[int, list[float]] = {}  # stream -> [first pts, end of the last frame, packets]
    with av.open(grant["playback_url"], timeout=20) as container:
        videos = [s for s in container.streams if s.type == "video"]
        assert len(videos) == len(video_job["video"]["ladder"])
        for packet in container.demux(videos):
            if packet.pts is None:
                continue  # the demuxer's flush packet
            tb = float(packet.stream.time_base)
            start, end = packet.pts * tb, (packet.pts + (packet.duration or 0)) * tb
            span = spans.setdefault(packet.stream.index, [start, end, 0])
            span[0], span[1], span[2] = min(span[0], start), max(span[1], end), span[2] + 1
    assert len(spans) == len(videos)
    for first, end, packets in spans.values():
        assert packets == round(SECONDS * FPS), spans
        assert abs((end - first) - SECONDS) <= 1 / FPS + 1e-6, spans


def test_a_bad_token_gets_403_on_every_playlist_and_only_the_owner_mints(grant, video_job, stack, ingest_url,
                                                                          new_client):
    token = grant["playback_url"].split("/v1/play/")[1].split("/")[0]
    keys = _keyring(local_playback_keys(stack.state_dir))
    now = int(time.time())
    expired = playback_token.mint(keys, video_job["job_id"], now - 7200, 3600)[0]
    forged = playback_token.mint((("local1", b"f" * 32),), video_job["job_id"], now, 3600)[0]
    other_job = playback_token.mint(keys, "0" * 32, now, 3600)[0]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (expired, forged, tampered):
        for path in ("master.m3u8", f"{video_job['video']['ladder'][0]['name']}/index.m3u8", "storyboard.vtt"):
            resp = requests.get(f"{ingest_url}/v1/play/{bad}/{path}", timeout=10)
            assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/problem+json", (bad, path)
    assert requests.get(f"{ingest_url}/v1/play/{other_job}/master.m3u8", timeout=10).status_code == 404

    _, stranger, _ = new_client("stranger")
    assert stranger.post(f"{ingest_url}/v1/jobs/{video_job['job_id']}/playback", timeout=10).status_code == 404
    assert requests.post(f"{ingest_url}/v1/jobs/{video_job['job_id']}/playback", timeout=10).status_code == 401


BROWSER_DIR = REPO_ROOT / "tests" / "browser"
HLS_JS = BROWSER_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"


def test_the_example_player_plays_the_private_job_in_chromium_with_hls_js(grant, video_job, ingest_url, stack):
    """examples/player.html in Debian's chromium (playwright-core; `make browser-deps` installs it
    and hls.js): playback passes 5 s, more than one rung is played, the storyboard's sprite shows
    on the scrub bar, and no request fails (segments and sprite through the verifying front)."""
    assert HLS_JS.exists() and shutil.which("node"), "run `make browser-deps` (npm ci in tests/browser)"
    assert Path("/usr/bin/chromium").exists(), "run `make system-packages` (apt-get install chromium)"
    done = subprocess.run(["node", str(BROWSER_DIR / "play.mjs"), ingest_url, grant["playback_url"],
                           grant["storyboard_url"], str(REPO_ROOT / "examples"), str(HLS_JS)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == [] and out["failed"] == [] and out["bad_status"] == [], out
    assert out["current_time"] >= 5, out
    assert len(out["levels"]) == len(video_job["video"]["ladder"]) >= 2
    rungs = {u.rsplit("/", 2)[-2] for u in out["requests"] if u.endswith(".ts")}
    assert len(rungs) >= 2 or len(set(out["switches"])) >= 2, out  # the variant switched
    assert all(u.startswith(stack.url("storage")) for u in out["requests"] if u.endswith((".ts", ".jpg")))
    assert out["cues"] > 0 and out["sprite_loaded"], out
    assert out["preview"]["display"] == "block" and "storyboard.jpg" in out["preview"]["image"], out


def test_the_ffmpeg_command_copies_the_full_ladder_from_the_token_url(grant, tmp_path):
    """`ffmpeg -i URL -c copy` as a user runs it (the FFmpeg binary imageio-ffmpeg ships): every
    variant's picture lands in the copy, which lasts as long as the source within one frame."""
    import imageio_ffmpeg  # a bench dependency: make installs it with the dev ones

    out = tmp_path / "copy.ts"
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", grant["playback_url"],
                           "-map", "0", "-c", "copy", "-f", "mpegts", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as copy:
        videos = [s for s in copy.streams if s.type == "video"]
        assert len(videos) >= 2
        ends: dict[int, list[float]] = {}
        for packet in copy.demux(videos):
            if packet.pts is None:
                continue
            tb = float(packet.stream.time_base)
            span = ends.setdefault(packet.stream.index, [packet.pts * tb, 0.0])
            span[0] = min(span[0], packet.pts * tb)
            span[1] = max(span[1], (packet.pts + (packet.duration or 0)) * tb)
    for first, end in ends.values():
        assert abs((end - first) - SECONDS) <= 1 / FPS + 1e-6, ends
