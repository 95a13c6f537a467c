"""Playable before done (issue 23 item 5), end to end: a long video's job view and its `playable`
event carry a playback URL while render still works; its media playlists are EVENT playlists
that grow span by span (hls.js plays them in chromium meanwhile), then VOD with EXT-X-ENDLIST
once the job is complete.

A stack of its own with one request at a time per service (GUNICORN_THREADS=1): render's spans
are then rendered one after another, as a busy fan-out finishes them, so the prefix visibly
grows (with eight threads on two cores every span finishes at about the same moment). The clip
is tests/support/longclip.py's (181 s of 720p, keyframes every 2 s) in 20 s spans.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from localcloud.stack import private_stack
from localcloud.taps import TopicTap
from services.client import IngestClient
from services.common.config import REPO_ROOT
from tests.cloud.conftest import TEST_RETRY_BACKOFF, IngestKey
from tests.support.longclip import long_clip

SPAN_SECONDS = 20
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
HLS_JS = BROWSER_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    env = {"GUNICORN_THREADS": "1", "VIDEO_SEGMENT_SECONDS": str(SPAN_SECONDS), "LOG_LEVEL": "INFO"}
    with private_stack(tmp_path_factory.mktemp("serial"), "mediarelay-playable", env, TEST_RETRY_BACKOFF) as cfg:
        yield cfg


def _uris(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_long_video_plays_while_it_renders_and_its_playlists_grow_then_end(serial):
    clip = long_clip()
    events = TopicTap(serial.project, "media-events")
    http = requests.Session()
    http.auth = IngestKey(serial.url("ingest"), serial.api_key)
    ingest = serial.url("ingest")
    try:
        job_id = IngestClient(ingest, api_key=serial.api_key).submit(clip.path, signed=True)["job_id"]
        deadline = time.monotonic() + 60  # the job appears when storage reports the signed upload
        while http.get(f"{ingest}/v1/jobs/{job_id}", timeout=10).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert http.post(f"{ingest}/v1/jobs/{job_id}/playback", timeout=10).status_code == 409  # nothing to play yet

        deadline, view = time.monotonic() + 600, {}
        while time.monotonic() < deadline:
            view = http.get(f"{ingest}/v1/jobs/{job_id}", timeout=10).json()
            if view.get("playback") or view["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
        # the URL came before the job was done (render beside the analysis: it may still be analysing)
        assert view["status"] in ("analyzing", "rendering") and "video" not in view, view
        assert view["timings"]["playable_at"] and "ready_at" not in view["timings"]
        master_url = view["playback"]["playback_url"]
        assert http.post(f"{ingest}/v1/jobs/{job_id}/playback", timeout=10).status_code == 200  # mintable now

        master = requests.get(master_url, timeout=10)  # no API key: the token is the credential
        assert master.status_code == 200 and master.headers["Cache-Control"] == "private, no-cache"
        top = urllib.parse.urljoin(master_url, _uris(master.text)[0])
        played = _play_in_chromium(ingest, master_url)  # hls.js on the growing (EVENT) playlists
        assert played["errors"] == [] and played["failed"] == [] and played["bad_status"] == [], played
        assert played["current_time"] >= 5, played
        assert http.get(f"{ingest}/v1/jobs/{job_id}", timeout=10).json()["status"] in ("analyzing", "rendering")  # growing

        seen: list[list[str]] = []  # each EVENT playlist's segments, in the order fetched
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            media = requests.get(top, timeout=10)
            assert media.status_code == 200, media.text
            if "#EXT-X-ENDLIST" in media.text:
                break
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in media.text and media.headers["Cache-Control"] == "private, no-cache"
            segs = [u.split("?")[0] for u in _uris(media.text)]
            if not seen or segs != seen[-1]:
                seen.append(segs)
            time.sleep(1.0)
        final = [u.split("?")[0] for u in _uris(media.text)]
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in media.text and media.text.rstrip().endswith("#EXT-X-ENDLIST")

        # It grew: at least two EVENT playlists, each the one before plus segments at its end, all a prefix of the VOD.
        assert len(seen) >= 2, [len(s) for s in seen]
        for shorter, longer in zip(seen, seen[1:], strict=False):
            assert len(shorter) < len(longer) and longer[:len(shorter)] == shorter
        assert final[:len(seen[-1])] == seen[-1]  # the last may hold every span already: the VOD adds ENDLIST
        print(f"EVENT playlist lengths {[len(s) for s in seen]}, then VOD of {len(final)}")
        first = requests.get(_uris(media.text)[0], timeout=10)
        assert first.status_code == 200 and first.content[:1] == b"\x47"  # an MPEG-TS packet's sync byte

        done = http.get(f"{ingest}/v1/jobs/{job_id}", timeout=10).json()
        deadline = time.monotonic() + 120
        while done["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.5)
            done = http.get(f"{ingest}/v1/jobs/{job_id}", timeout=10).json()
        assert done["status"] == "completed", done.get("error")
        assert _when(done["timings"]["playable_at"]) < _when(done["timings"]["ready_at"]) == _when(done["finished_at"])

        found = events.wait_for_jobs([job_id], timeout=60, with_playable=True)[job_id]
        assert sorted(e["status"] for e in found) == ["completed", "playable"], found  # one of each
        [playable] = [e for e in found if e["status"] == "playable"]
        assert playable["links"]["playback"] == f"{ingest}/v1/jobs/{job_id}/playback"
        assert _when(playable["occurred_at"]) == _when(done["timings"]["playable_at"])
    finally:
        events.close()
        http.close()


def _play_in_chromium(ingest: str, playback_url: str) -> dict:
    """examples/player.html with hls.js in Debian's chromium (tests/browser/play.mjs), no storyboard yet."""
    assert HLS_JS.exists() and shutil.which("node"), "run `make browser-deps` (npm ci in tests/browser)"
    assert Path("/usr/bin/chromium").exists(), "run `make system-packages` (apt-get install chromium)"
    done = subprocess.run(["node", str(BROWSER_DIR / "play.mjs"), ingest, playback_url, "", str(REPO_ROOT / "examples"),
                           str(HLS_JS)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
