"""Long video, end to end: segments fanned out over Pub/Sub, an HLS ladder and an MP4 back.

Real HTTP to the services under gunicorn, the local cloud (Pub/Sub and Firestore emulators,
fake-gcs-server). The clip (tests/longclip.py): 3 minutes of 720p with sound, rotation
metadata and a variable frame rate, a hard cut exactly on a segment boundary (80 s) and a
dissolve across one (120 s); VIDEO_SEGMENT_SECONDS=40 cuts it into 5 segments.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from google.cloud import storage

from services.client import IngestClient
from services.render.ladder import TS_OFFSET_S
from tests.cloud.conftest import wait_for_status
from tests.support.longclip import long_clip

FRAME = 1 / 20  # the clip's longest frame interval (VFR cycle 1/24, 1/30, 1/20 s)


@pytest.fixture(scope="module")
def clip():
    return long_clip()


@pytest.fixture(scope="module")
def done(stack, http, clip, events):
    """The long clip through the chain: (public job, internal job, event)."""
    from services.pipeline.jobstore import JobStore

    client = IngestClient(stack.url("ingest"), api_key=stack.api_key)
    job_id = client.submit(clip.path, signed=True)["job_id"]  # 11 MB: over the test stack's MAX_UPLOAD_BYTES
    doc = wait_for_status(http, stack.url("ingest"), job_id, timeout=600)
    internal = JobStore(stack.project).get(job_id)
    found = events.wait_for_jobs([job_id], timeout=30)[job_id]
    assert len(found) == 1, found  # exactly one final event
    return doc, internal, found[0]


def _download(stack, uri: str, folder: Path) -> Path:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    out = folder / name.split("/", 2)[-1]  # renditions/<job>/hls/720p/0001-00.ts -> hls/720p/0001-00.ts
    out.parent.mkdir(parents=True, exist_ok=True)
    storage.Client(project=stack.project).bucket(bucket).blob(name).download_to_filename(str(out))
    return out


@pytest.fixture(scope="module")
def played(done, stack, tmp_path_factory):
    """The job's HLS tree and MP4 downloaded as a player would see them, relative names kept."""
    doc, job, _ = done
    folder = tmp_path_factory.mktemp("hls")
    video = job["video"]
    bucket = storage.Client(project=stack.project).bucket(video["hls"]["master"]["uri"].removeprefix("gs://").split("/")[0])
    prefix = f"renditions/{job['job_id']}/"
    for blob in bucket.list_blobs(prefix=prefix + "hls/"):
        _download(stack, f"gs://{bucket.name}/{blob.name}", folder)
    mp4 = _download(stack, video["mp4"]["uri"], folder)
    return folder / "hls" / "master.m3u8", mp4, video


def _video_pts(path: Path, stream_index: int | None = None) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0] if stream_index is None else c.streams[stream_index]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.pts is not None)


def test_a_long_video_completes_with_a_ladder_a_master_playlist_and_an_mp4(done, clip, stack):
    from services.pipeline.jobstore import JobStore

    doc, job, event = done
    assert doc["status"] == "completed", doc.get("error")
    # Fanned in once, then its records and work files deleted. Render's n spans are 2n segments: the
    # ladder's n, and the n taking the analysis's pictures.
    for stage, count in (("analyze", len(clip.plan)), ("render", 2 * len(clip.plan))):
        assert job["stages"][stage]["segments"]["count"] == count
        assert job["stages"][stage]["segments"]["fanned_in_at"] <= job["stages"][stage]["finished_at"]
        assert JobStore(stack.project).segments_done(job["job_id"], stage) == {}
    bucket = job["video"]["hls"]["master"]["uri"].removeprefix("gs://").split("/")[0]
    assert not list(storage.Client(project=stack.project).list_blobs(bucket, prefix=f"work/{job['job_id']}/"))
    assert [(s["start_s"], s["end_s"]) for s in job["analysis"]["segments"]] == clip.plan
    video = event["video"]
    assert video["segments"] == len(clip.plan) >= 4
    # Never upscaled: a 720p source gets no 1080p rung; upright (rotation applied), display aspect kept.
    assert [(r["name"], r["width"], r["height"]) for r in video["ladder"]][0] == ("720p", 1280, 720)
    assert all(r["height"] < 720 for r in video["ladder"][1:]) and len(video["ladder"]) >= 2
    for r in video["ladder"]:
        assert r["codecs"].startswith("avc1.64") and r["codecs"].endswith("mp4a.40.2")
        assert r["bandwidth"] >= r["average_bandwidth"] > 0
    assert video["audio"] is True
    public = doc["video"]
    assert public["hls"]["master"]["url"].startswith("http") and public["mp4"]["url"].startswith("http")
    assert "uri" not in public["mp4"]  # the public view never shows storage locations


def test_the_boundary_cut_and_the_dissolve_across_a_boundary_are_reported_once(done, clip):
    _, job, _ = done
    starts = [s["start_ms"] for s in job["analysis"]["shots"]]
    assert sum(abs(t - clip.cut_s * 1000) <= 1000 * FRAME for t in starts) == 1
    dissolves = [s["transition"] for s in job["analysis"]["shots"][1:] if s["transition"]["kind"] == "dissolve"]
    assert sum(d["start_ms"] < clip.dissolve_s * 1000 < d["end_ms"] for d in dissolves) == 1
    assert len(starts) == len(set(starts))


def test_pyav_opens_the_master_playlist_and_every_rung_lasts_as_long_as_the_source(played, clip):
    master, _, video = played
    text = master.read_text()
    for tag in ("#EXTM3U", "BANDWIDTH=", "AVERAGE-BANDWIDTH=", "RESOLUTION=1280x720", 'CODECS="avc1.64', "FRAME-RATE="):
        assert tag in text
    with av.open(str(master)) as c:  # FFmpeg's HLS demuxer: every variant is a program
        assert len(c.streams.video) == len(video["ladder"])
    for r in video["ladder"]:
        playlist = master.parent / r["name"] / "index.m3u8"
        assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
        pts = [t - TS_OFFSET_S for t in _video_pts(playlist)]  # MPEG-TS times carry a constant offset
        # Continuous across segment boundaries: every source frame once, none added, none lost.
        assert len(pts) == clip.frames
        assert np.allclose(pts, clip.pts, atol=1e-3), "frame times differ from the source's"
        assert min(np.diff(pts)) > 0 and max(np.diff(pts)) <= FRAME + 1e-3
        assert abs((pts[-1] + FRAME) - clip.duration_s) <= FRAME


def test_the_mp4_is_a_remux_with_its_index_first_and_audio_in_sync(played, clip):
    _, mp4, video = played
    head = mp4.read_bytes()[:1 << 20]
    assert head.find(b"moov") < head.find(b"mdat"), "moov after mdat: not progressive"
    assert np.allclose(_video_pts(mp4), clip.pts, atol=1e-3)
    with av.open(str(mp4)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.width, v.codec_context.height) == (video["mp4"]["width"], video["mp4"]["height"])
        assert a.codec_context.name == "aac"
        rate = a.codec_context.sample_rate
        samples = []
        start = None
        for frame in c.decode(a):
            if start is None:
                start = float(frame.pts * a.time_base)
            samples.append(frame.to_ndarray().mean(axis=0))
    audio = np.concatenate(samples)
    # The clip's audio carries a loud burst at every shot change: find them in the MP4's audio
    # and compare with the picture's cut times (within one frame).
    envelope = np.abs(audio)
    loud = envelope > 0.5 * envelope.max()
    onsets = [start + i / rate for i in np.flatnonzero(loud[1:] & ~loud[:-1]) + 1]
    bursts = [t for i, t in enumerate(onsets) if i == 0 or t - onsets[i - 1] > 1.0]
    expected = clip.shot_starts_s[1:]
    assert len(bursts) == len(expected), (bursts, expected)
    assert max(abs(b - e) for b, e in zip(bursts, expected, strict=True)) <= FRAME


def test_a_player_streams_the_ladder_over_http_from_the_renditions_base_url(done, stack, clip):
    """As a browser would from a CDN or public bucket: the master playlist's relative URIs resolve
    on the same host (fake-gcs-server's path-style URLs stand for https://storage.googleapis.com/)."""
    _, job, _ = done
    bucket, _, name = job["video"]["hls"]["master"]["uri"].removeprefix("gs://").partition("/")
    url = f"{stack.url('gcs')}/{bucket}/{name}"
    with av.open(url, options={"protocol_whitelist": "http,tcp,file,crypto"}) as c:
        assert len(c.streams.video) == len(job["video"]["ladder"])
        top = c.streams.video[-1] if c.streams.video[-1].codec_context.width == 1280 else c.streams.video[0]
        times = []
        for p in c.demux(top):
            if p.pts is not None:
                times.append(float(p.pts * top.time_base) - TS_OFFSET_S)
            if len(times) >= 300:  # the first segments are enough to show it plays
                break
    # Decode order runs a few frames ahead of display order: compare all but the last few.
    assert np.allclose(sorted(times)[:280], clip.pts[:280], atol=1e-3)


def test_the_ladder_encodes_beside_the_analysis(done, clip):
    """Render's ladder starts on analyze's plan, before the analysis is done (the job's recorded stage
    timings, as the job view shows them), and the one fan-in still comes after both."""
    doc, job, _ = done
    stages = doc["stages"]
    render_started = job["stages"]["render"]["started_at"]
    assert render_started < job["stages"]["analyze"]["segments"]["fanned_in_at"]
    assert stages["render"]["started_at"] < stages["analyze"]["finished_at"]
    assert job["stages"]["render"]["segments"]["fanned_in_at"] > job["stages"]["analyze"]["finished_at"]
    assert doc["status"] == "completed" and job["video"]["segments"] == len(clip.plan)
