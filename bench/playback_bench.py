"""Private playback: what the token route adds before the first frame, and what signing costs.

Against a local stack (ingest under gunicorn behind nginx, the verifying storage front): one
video job, then N requests each of
- the job view (`GET /v1/jobs/{id}`, an authenticated API call: the baseline),
- `POST /v1/jobs/{id}/playback` (minting),
- the master playlist, a media playlist warm (its signatures cached) and cold (a token in a new
  PLAYBACK_SIGN_BUCKET_SECONDS bucket each time: every segment signed),
- one segment through the storage front.
Then, in-process, the signing of a 300-segment playlist cold and warm (local RSA key; on Cloud
Run each signature is instead one IAM signBlob call, counted by BlobStore.signatures).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from localcloud import samples
from localcloud.stack import local_playback_keys, private_stack
from services.client import auth_headers
from services.common.config import _keyring
from services.ingest import playback_token

N = int(os.environ.get("PLAYBACK_BENCH_N", "40"))


def _timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def _row(name: str, xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=20)
    return f"  {name:<34} p50 {statistics.median(xs) * 1000:7.1f} ms  p95 {q[18] * 1000:7.1f} ms  max {max(xs) * 1000:7.1f} ms"


def _ok(resp: requests.Response) -> requests.Response:
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return resp


def _stack_figures(tmp: Path) -> list[str]:
    with private_stack(tmp, "mediarelay-playback") as cfg:
        ingest, auth = cfg.url("ingest"), auth_headers(cfg.api_key)
        data = samples.video_mp4(tmp / "clip.mp4", seconds=30.0)
        job_id = requests.post(f"{ingest}/v1/uploads", data=data, headers={"Content-Type": "video/mp4", **auth},
                               timeout=30).json()["job_id"]
        deadline = time.monotonic() + 300
        while requests.get(f"{ingest}/v1/jobs/{job_id}", headers=auth, timeout=10).json()["status"] != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.5)
        grant = _ok(requests.post(f"{ingest}/v1/jobs/{job_id}/playback", headers=auth, timeout=10)).json()
        master = grant["playback_url"]
        rung = [ln for ln in _ok(requests.get(master, timeout=10)).text.splitlines() if ln and not ln.startswith("#")][0]
        media_url = master.rsplit("/", 1)[0] + "/" + rung
        media = _ok(requests.get(media_url, timeout=10)).text
        segment = [ln for ln in media.splitlines() if ln and not ln.startswith("#")][0]
        keys = _keyring(local_playback_keys(cfg.state_dir))
        now = int(time.time())
        cold_tokens = [playback_token.mint(keys, job_id, now + 900 * (i + 1), 3600)[0] for i in range(N)]
        figures = {
            "job view (baseline, API key)": [_timed(lambda: _ok(requests.get(f"{ingest}/v1/jobs/{job_id}", headers=auth,
                                                                              timeout=10))) for _ in range(N)],
            "POST playback (mint)": [_timed(lambda: _ok(requests.post(f"{ingest}/v1/jobs/{job_id}/playback", headers=auth,
                                                                      timeout=10))) for _ in range(N)],
            "master playlist": [_timed(lambda: _ok(requests.get(master, timeout=10))) for _ in range(N)],
            "media playlist, warm": [_timed(lambda: _ok(requests.get(media_url, timeout=10))) for _ in range(N)],
            "media playlist, cold (new bucket)": [
                _timed(lambda t=t: _ok(requests.get(media_url.replace(master.split("/")[-2], t), timeout=10)))
                for t in cold_tokens],
            "one segment via the storage front": [_timed(lambda: _ok(requests.get(segment, timeout=10))) for _ in range(N)],
        }
        segments = media.count("#EXTINF")
    lines = [f"local stack, 30 s 640x360 clip ({segments} segments per rung), {N} requests each, "
             f"load {os.getloadavg()[0]:.1f}"]
    lines += [_row(name, xs) for name, xs in figures.items()]
    first = (statistics.median(figures["POST playback (mint)"]) + statistics.median(figures["master playlist"])
             + statistics.median(figures["media playlist, cold (new bucket)"]))
    lines.append(f"  time before the first segment request (mint + master + cold media, p50 sums): {first * 1000:.0f} ms")
    return lines


def _signing_figures(tmp: Path) -> list[str]:
    """A 300-segment playlist through the real Playback route code, in-process (tests/unit's setup)."""
    os.environ.setdefault("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # anonymous client; signing is local
    from tests.support.playback import JOB, KEYS, SEGMENTS, playback_app

    app = playback_app(tmp)
    client, blobs = app.test_client(), app.rt.blobs
    token = playback_token.mint(KEYS, JOB, int(time.time()), 3600)[0]
    before = blobs.signatures
    cold = _timed(lambda: _ok(client.get(f"/v1/play/{token}/360p/index.m3u8")))
    cold_calls = blobs.signatures - before
    warm = [_timed(lambda: _ok(client.get(f"/v1/play/{token}/360p/index.m3u8"))) for _ in range(20)]
    warm_calls = (blobs.signatures - before - cold_calls) / 20
    return [f"in-process, {SEGMENTS}-segment media playlist:",
            f"  cold: {cold * 1000:.0f} ms, {cold_calls} signatures (= IAM signBlob calls on Cloud Run)",
            f"  warm: p50 {statistics.median(warm) * 1000:.1f} ms, {warm_calls:g} signatures per request"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lines = _signing_figures(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        lines = _stack_figures(Path(tmp)) + lines
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
