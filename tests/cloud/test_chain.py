"""One upload after another through ingest -> analyze -> render -> notify, all real."""
from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from google.cloud import storage
from PIL import Image

from localcloud import samples
from services.pipeline.jobstate import STAGES
from services.pipeline.jobstore import JobStore
from services.render.image import render_image
from services.render.presets import load as load_presets

from .conftest import TEST_MAX_UPLOAD_BYTES

PRESET_EDGES = {
    "long-3840": 3840, "long-2048": 2048, "long-1536": 1536, "long-750": 750,
    "thumb-256": 256, "thumb-128": 128, "poster": 1920, "still": 640,
}
DEVICE_PRESETS = ["long-3840", "long-2048", "long-1536", "long-750"]


def upload(http, url, data: bytes, filename: str, headers=None):
    files = {"file": (filename, data, "application/octet-stream")}
    return http.post(f"{url}/v1/uploads", files=files, headers=headers or {}, timeout=30)


def fetch(http, url: str) -> bytes:
    """A rendition as a browser gets it: plain HTTP GET of the URL the job hands out."""
    resp = http.get(url, timeout=30)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.content


@pytest.fixture(scope="module")
def mixed_media(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("media")
    tag = uuid.uuid4().bytes  # fresh bytes each session: content-hash dedupe must not hide work
    return {
        "photo.jpg": samples.jpeg_bytes(samples.photo("astronaut")) + tag,
        "big.jpg": samples.large_jpeg(3000, 2000) + tag,
        "rotated.jpg": samples.rotated_jpeg() + tag,
        "alpha.png": samples.alpha_png() + tag,
        "clip.mp4": samples.video_mp4(folder / "clip.mp4"),
    }


def test_mixed_uploads_all_complete_with_renditions_in_gcs(http, ingest_url, events, mixed_media, stack):
    jobs = {}
    for name, data in mixed_media.items():
        resp = upload(http, ingest_url, data, name)
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["status_url"].endswith(f"/v1/jobs/{body['job_id']}")
        jobs[name] = body["job_id"]

    found = events.wait_for_jobs(jobs.values(), timeout=120)
    for name, job_id in jobs.items():
        assert [e["status"] for e in found[job_id]] == ["completed"], (name, found[job_id])

    for name, job_id in jobs.items():
        doc = http.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10).json()
        assert doc["status"] == "completed"
        assert all(doc["stages"][s]["state"] == "done" for s in STAGES), doc["stages"]
        assert doc["analysis"]["width"] > 0 and doc["renditions"], name
        event = found[job_id][0]
        assert event["id"] == f"{job_id}/completed"
        assert [e["name"] for e in event["renditions"]] == [r["name"] for r in doc["renditions"]]
        assert all(e["url"] == f"{ingest_url}/v1/jobs/{job_id}/renditions/{e['name']}" for e in event["renditions"])
        assert all("uri" not in r and "generation" not in r for r in doc["renditions"])
        for r in doc["renditions"]:
            im = Image.open(io.BytesIO(fetch(http, r["url"])))
            assert im.format.lower() == r["format"]
            assert im.size == (r["width"], r["height"])
            assert max(im.size) == min(PRESET_EDGES[r["preset"]], max(doc["analysis"]["width"], doc["analysis"]["height"]))

    # Orientation: the sideways-stored photo renders upright, as analyze reports it. At 451x300 every
    # device size is one rendition at its own size; compare a thumbnail with one cut from the upright photo.
    rotated = http.get(f"{ingest_url}/v1/jobs/{jobs['rotated.jpg']}", timeout=10).json()
    assert (rotated["analysis"]["width"], rotated["analysis"]["height"]) == (451, 300)
    assert {s["preset"]: s["same_as"] for s in rotated["skipped"]} == dict.fromkeys(DEVICE_PRESETS[:3], "long-750")
    assert {(r["width"], r["height"]) for r in rotated["renditions"] if r["preset"] == "long-750"} == {(451, 300)}
    [thumb] = [r for r in rotated["renditions"] if r["preset"] == "thumb-256" and r["format"] == "jpeg"]
    got = np.asarray(Image.open(io.BytesIO(fetch(http, thumb["url"]))).convert("L"), np.float32)
    upright = samples.jpeg_bytes(samples.photo("chelsea"))
    want = render_image(upright, rotated["analysis"], load_presets().image_presets, encoders={}, max_pixels=10**8,
                        background=(255, 255, 255))[0]
    want = np.asarray(Image.open(io.BytesIO(next(r.data for r in want if r.preset == "thumb-256"))).convert("L"), np.float32)
    assert np.abs(got - want).mean() < 6, "rotated source must render like the upright photo"
    assert np.abs(got - np.rot90(want)).mean() > 20
    # A 3000 px photo gets every preset, 3840 at its own 3000x2000 (never upscaled); the 512 px one
    # gets one rendition at its own size for all the device sizes, and says which preset holds it.
    big = http.get(f"{ingest_url}/v1/jobs/{jobs['big.jpg']}", timeout=10).json()
    assert {(r["preset"], r["format"]) for r in big["renditions"]} == {
        (p, f) for p in DEVICE_PRESETS[1:] for f in ("jpeg", "webp", "avif")
    } | {(p, f) for p in ("long-3840", "thumb-256", "thumb-128") for f in ("jpeg", "webp")}
    assert {(r["width"], r["height"]) for r in big["renditions"] if r["preset"] == "long-3840"} == {(3000, 2000)}
    assert big.get("skipped", []) == []  # the public view leaves out an empty list
    small = http.get(f"{ingest_url}/v1/jobs/{jobs['photo.jpg']}", timeout=10).json()
    assert {s["preset"]: s["same_as"] for s in small["skipped"]} == dict.fromkeys(DEVICE_PRESETS[:3], "long-750")
    video = http.get(f"{ingest_url}/v1/jobs/{jobs['clip.mp4']}", timeout=10).json()
    assert video["analysis"]["fps"] == pytest.approx(24, abs=0.01)
    assert video["analysis"]["duration_s"] == pytest.approx(3.0, abs=0.05)
    presets = [r["preset"] for r in video["renditions"]]
    assert presets[:2] == ["poster", "poster"] and set(presets[2:]) == {"still"} and len(presets) >= 3
    board = video["storyboard"]
    sprite = Image.open(io.BytesIO(fetch(http, board["sprite"]["url"])))
    assert sprite.size == (board["columns"] * board["tile_width"], board["rows"] * board["tile_height"])
    vtt = fetch(http, board["vtt"]["url"]).decode()
    assert vtt.startswith("WEBVTT") and vtt.count("storyboard.jpg#xywh=") == board["tiles"]
    assert len(found[jobs["clip.mp4"]][0]["renditions"]) == len(video["renditions"])

    # Exactly one final event per job: each job records its event as published, which makes every
    # later delivery a no-op (jobstate.claim_final), and the tap holds that one event only.
    events.drain()
    for job_id in jobs.values():
        final = JobStore(stack.project).get(job_id)["final_event"]
        assert final["published"] is True and final["message_id"]
        assert [d["id"] for _, d in events.for_job(job_id)] == [final["id"]]


def test_truncated_jpeg_ends_failed_with_reason(http, ingest_url, events, stack):
    resp = upload(http, ingest_url, samples.truncated_jpeg(uuid.uuid4().bytes), "cut.jpg")
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    found = events.wait_for_jobs([job_id], timeout=60)
    [event] = found[job_id]
    assert event["status"] == "failed" and event["type"] == "mediarelay.job.failed"
    assert event["error"]["stage"] == "analyze"
    assert event["error"]["error_class"] == "corrupt-media"
    doc = http.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10).json()
    assert doc["status"] == "failed"
    assert "no pixel data" in doc["error"]["reason"]
    assert doc["stages"]["analyze"]["state"] == "failed"
    assert doc["stages"]["render"]["state"] == "pending"


def test_same_idempotency_key_returns_same_job(http, ingest_url):
    key = f"test-{uuid.uuid4()}"
    data = samples.jpeg_bytes(samples.photo("coffee")) + key.encode()
    first = upload(http, ingest_url, data, "a.jpg", {"Idempotency-Key": key})
    second = upload(http, ingest_url, data, "a.jpg", {"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    other = upload(http, ingest_url, data + b"x", "a.jpg", {"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"


def _originals(stack) -> set[str]:
    return {b.name for b in storage.Client().list_blobs("mediarelay-originals")}


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"", 400, "no bytes"),
        (b"just some text, not an image" * 4, 415, "supported"),
        (b"%PDF-1.7\n" + b"0" * 100, 415, "supported"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(http, ingest_url, stack, data, status, words):
    before = _originals(stack)
    resp = upload(http, ingest_url, data, "x.bin")
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert words in resp.json()["detail"]
    assert _originals(stack) == before


def test_upload_over_the_size_limit_is_413(http, ingest_url, stack):
    before = _originals(stack)
    data = b"\xff\xd8\xff" + b"\0" * (TEST_MAX_UPLOAD_BYTES + 10)
    resp = http.post(f"{ingest_url}/v1/uploads", data=data, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert resp.status_code == 413
    assert "MAX_UPLOAD_BYTES" in resp.json()["detail"]
    assert _originals(stack) == before


def test_raw_body_upload_is_accepted(http, ingest_url, events):
    data = samples.jpeg_bytes(samples.photo("chelsea")) + uuid.uuid4().bytes
    resp = http.post(f"{ingest_url}/v1/uploads", data=data, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    assert events.wait_for_jobs([job_id], timeout=60)[job_id][0]["status"] == "completed"


def test_unknown_job_is_404_problem(http, ingest_url):
    resp = http.get(f"{ingest_url}/v1/jobs/doesnotexist0000", timeout=10)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["status"] == 404


@pytest.mark.parametrize("service", ["ingest", "analyze", "render", "notify"])
def test_every_service_answers_healthz(http, stack, service):
    resp = http.get(f"{stack.url(service)}/healthz", timeout=5)
    # The local cloud runs with push verification off on purpose (PUSH_VERIFICATION=off), and says so.
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "service": service, "push_verification": "off"}
