"""One upload after another through ingest -> analyze -> render -> notify, all real."""
from __future__ import annotations

import io
import time
import uuid

import pytest
from google.cloud import storage
from PIL import Image

from localcloud import samples

from .conftest import TEST_MAX_UPLOAD_BYTES

PRESET_EDGES = {"large": 1280, "thumb": 256, "poster": 1280}


def upload(http, url, data: bytes, filename: str, headers=None):
    files = {"file": (filename, data, "application/octet-stream")}
    return http.post(f"{url}/v1/uploads", files=files, headers=headers or {}, timeout=30)


def read_gs(uri: str) -> bytes:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return storage.Client().bucket(bucket).blob(name).download_as_bytes()


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


def test_mixed_uploads_all_complete_with_renditions_in_gcs(http, ingest_url, events, mixed_media):
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
        assert all(doc["stages"][s]["state"] == "done" for s in ("analyze", "render", "notify")), doc["stages"]
        assert doc["analysis"]["width"] > 0 and doc["renditions"], name
        event = found[job_id][0]
        assert event["id"] == f"{job_id}/completed"
        assert event["renditions"] == doc["renditions"]
        for r in doc["renditions"]:
            im = Image.open(io.BytesIO(read_gs(r["uri"])))
            assert im.format.lower() == r["format"]
            assert im.size == (r["width"], r["height"])
            assert max(im.size) == min(PRESET_EDGES[r["preset"]], max(doc["analysis"]["width"], doc["analysis"]["height"]))

    # Orientation: the sideways-stored photo renders upright (landscape), as analyze reports it.
    rotated = http.get(f"{ingest_url}/v1/jobs/{jobs['rotated.jpg']}", timeout=10).json()
    assert (rotated["analysis"]["width"], rotated["analysis"]["height"]) == (451, 300)
    assert all(r["width"] > r["height"] for r in rotated["renditions"])
    # A 3000 px photo gets both presets; the 512 px one skips the 1280 preset and says so.
    big = http.get(f"{ingest_url}/v1/jobs/{jobs['big.jpg']}", timeout=10).json()
    assert {r["preset"] for r in big["renditions"]} == {"large", "thumb"}
    small = http.get(f"{ingest_url}/v1/jobs/{jobs['photo.jpg']}", timeout=10).json()
    assert [s["preset"] for s in small["skipped"]] == ["large"]
    video = http.get(f"{ingest_url}/v1/jobs/{jobs['clip.mp4']}", timeout=10).json()
    assert video["analysis"]["fps"] == pytest.approx(24, abs=0.01)
    assert video["analysis"]["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert [r["preset"] for r in video["renditions"]] == ["poster"]

    # Exactly one final event per job, even after a grace period for stragglers.
    time.sleep(1.0)
    events.drain()
    for job_id in jobs.values():
        assert len(events.for_job(job_id)) == 1


def test_truncated_jpeg_ends_failed_with_reason(http, ingest_url, events, stack):
    resp = upload(http, ingest_url, samples.truncated_jpeg() + uuid.uuid4().bytes, "cut.jpg")
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    found = events.wait_for_jobs([job_id], timeout=60)
    [event] = found[job_id]
    assert event["status"] == "failed" and event["type"] == "mediarelay.job.failed"
    assert event["error"]["stage"] == "analyze"
    assert event["error"]["error_class"] == "corrupt-media"
    doc = http.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10).json()
    assert doc["status"] == "failed"
    assert "truncated" in doc["error"]["reason"] or "decode" in doc["error"]["reason"]
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
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "service": service}
