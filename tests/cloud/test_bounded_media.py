"""Bounded media work (issue 10): pre-checks from the bytes, at the door and in the stages."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from localcloud import chaos
from tests.support import bombs
from tests.support.pushes import envelope

from .test_chain import _originals


@pytest.mark.parametrize(
    "raw, setting",
    [(bombs.header_bomb_png(40000, 40000), "MAX_IMAGE_PIXELS"), (bombs.scan_bomb(500), "JPEG_MAX_SCANS")],
)
def test_the_door_answers_413_naming_the_setting_and_makes_no_job(http, ingest_url, stack, raw, setting):
    key = f"door-{setting}-{time.time()}"
    before = _originals(stack)
    resp = http.post(f"{ingest_url}/v1/uploads", data=raw, headers={"Idempotency-Key": key}, timeout=30)
    assert resp.status_code == 413, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["limit"] == setting and setting in body["detail"]
    assert _originals(stack) - before == set()  # nothing stored, so no job (an earlier test's refused upload may go meanwhile)


# --- the bounded child, in-process -----------------------------------------------------------


class _Crashes:
    def __init__(self):
        self.count = 0

    def record_crash(self, job_id, stage, reason):
        self.count += 1
        return self.count


# --- admission ---------------------------------------------------------------------------------


# --- through the running stack ----------------------------------------------------------------

CHAIN_INPUTS = {
    "gif-10000-frames-4000x4000": lambda: bombs.many_frame_gif(10_000, (4000, 4000)),
    "png-100mp-alpha": lambda: bombs.big_png(10000, 10000, alpha=True, seed=3),
    "png-100mp-16bit": lambda: bombs.big_png(10000, 10000, depth=16, seed=4),
    "webp-1000-frames-10000x9999": lambda: bombs.big_canvas_webp(1000, (10000, 9999)),
}
FINAL = ("completed", "failed")


@pytest.fixture(scope="module")
def chain_jobs(stack, http, ingest_url):
    """The inputs uploaded at once (plus a scan bomb through a signed URL, past the door), waited
    for while both media stages' /healthz is polled; returns (jobs by name, health answers)."""
    ids = {}
    for name, make in CHAIN_INPUTS.items():
        resp = http.post(f"{ingest_url}/v1/uploads", data=make(), headers={"Idempotency-Key": f"{name}-{uuid.uuid4()}"},
                         timeout=60)
        assert resp.status_code == 202, resp.text
        ids[name] = resp.json()["job_id"]
    bomb = bombs.scan_bomb(3000)
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": len(bomb)}, timeout=10)
    g = grant.json()
    assert http.put(g["upload_url"], data=bomb, headers=g["headers"], timeout=60).ok
    ids["jpeg-3000-scans-signed-url"] = g["job_id"]
    health, docs = [], {}
    deadline = time.monotonic() + 280
    while len(docs) < len(ids) and time.monotonic() < deadline:
        for service in ("analyze", "render"):
            health.append(http.get(f"{stack.url(service)}/healthz", timeout=5).status_code)
        for name, job_id in ids.items():
            resp = http.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10)
            if resp.status_code == 200 and resp.json()["status"] in FINAL:
                docs[name] = resp.json()
        time.sleep(0.5)
    return docs, health, ids


@pytest.mark.parametrize("name", [*CHAIN_INPUTS, "jpeg-3000-scans-signed-url"])
def test_each_bomb_ends_completed_or_failed_naming_the_limit_with_one_attempt_doing_the_work(chain_jobs, events, name):
    docs, _, ids = chain_jobs
    assert name in docs, f"{name} did not reach a final state"
    job = docs[name]
    if job["status"] == "failed":
        assert job["error"]["error_class"] == "limit-exceeded", job["error"]
        assert re.search(r"\b[A-Z][A-Z_]+=\d", job["error"]["reason"]), job["error"]["reason"]  # SETTING=value
    for stage in ("analyze", "render"):
        assert job["stages"][stage]["attempts"] <= 1, (stage, job["stages"][stage])
    assert [e["status"] for e in events.wait_for_jobs([ids[name]], timeout=30)[ids[name]]] == [job["status"]]


def test_the_expected_outcomes_of_the_bombs(chain_jobs):
    docs, _, _ = chain_jobs
    gif = docs["gif-10000-frames-4000x4000"]
    assert gif["status"] == "completed"
    assert gif["analysis"]["animation"] == {"frames": 10_000, "duration_ms": 100_000}  # from the headers
    assert any("ANIMATION_MAX_FRAMES=" in s["reason"] for s in gif["skipped"])  # static webp, poster only
    assert not any(r.get("animated") for r in gif["renditions"]) and any(r.get("poster") for r in gif["renditions"])
    webp = docs["webp-1000-frames-10000x9999"]
    assert webp["status"] == "completed" and webp["analysis"]["animation"]["frames"] == 1000
    for name in ("png-100mp-alpha", "png-100mp-16bit"):
        assert docs[name]["status"] == "completed", docs[name].get("error")
        assert {r["format"] for r in docs[name]["renditions"]} >= {"jpeg", "webp"}
    bomb = docs["jpeg-3000-scans-signed-url"]
    assert bomb["status"] == "failed" and bomb["error"]["stage"] == "analyze"
    assert "JPEG_MAX_SCANS=100" in bomb["error"]["reason"]


def test_the_media_stages_answer_healthz_throughout(chain_jobs):
    _, health, _ = chain_jobs
    assert len(health) > 10 and set(health) == {200}


def _seed(stack, raw: bytes, content_type: str) -> dict:
    """An original and its job document, nothing published: only what the test pushes moves it."""
    from services.pipeline.blobs import BlobStore
    from services.pipeline.jobstore import JobStore

    job_id = f"seed-{uuid.uuid4().hex[:12]}"
    obj = BlobStore(stack.project).put_if_absent("mediarelay-originals", f"originals/{job_id}", raw, content_type)
    source = {"uri": obj.uri, "bucket": obj.bucket, "name": obj.name, "generation": obj.generation,
              "content_type": content_type, "size": len(raw)}
    JobStore(stack.project).create(job_id, {"kind": "image", "source": source})
    return {"job_id": job_id, "kind": "image", "source": source, "submitted_at": "2026-01-01T00:00:00Z"}


def _job(stack, job_id: str) -> dict:
    from services.pipeline.jobstore import JobStore

    return JobStore(stack.project).get(job_id)


def test_a_decoder_crash_is_retried_then_ends_the_job_corrupt_media(stack, http, events):
    payload = _seed(stack, bombs.big_png(64, 64), "image/png")
    body = envelope(payload, "media-ingested.v1")
    with chaos.extra_instance(stack, "analyze", {"FAULT_INJECTION": "media-crash.analyze_image=1",
                                                 "MEDIA_CRASH_ATTEMPTS": "2"}) as url:
        first = http.post(f"{url}/push", json=body, timeout=60)
        assert first.status_code == 503  # redelivered by Pub/Sub: one crash may be the machine
        assert http.get(f"{url}/healthz", timeout=5).status_code == 200  # the worker survived its child
        second = http.post(f"{url}/push", json=body, timeout=60)
        assert second.status_code == 204
    job = _job(stack, payload["job_id"])
    assert job["status"] == "failed" and job["error"]["error_class"] == "corrupt-media"
    assert "SIGSEGV" in job["error"]["reason"] and "MEDIA_CRASH_ATTEMPTS=2" in job["error"]["reason"]
    assert job["stages"]["analyze"]["crashes"] == 2
    [event] = events.wait_for_jobs([payload["job_id"]], timeout=30)[payload["job_id"]]
    assert event["status"] == "failed" and event["error"]["error_class"] == "corrupt-media"


def test_a_child_over_its_memory_limit_fails_the_job_naming_the_setting(stack, http, events):
    # 60 MP RGBA: one decoded frame (240 MB) passes the header check at 256 MiB; the work does not fit.
    payload = _seed(stack, bombs.big_png(7746, 7746, alpha=True), "image/png")
    body = envelope(payload, "media-ingested.v1")
    with chaos.extra_instance(stack, "analyze", {"MEDIA_MEMORY_LIMIT_BYTES": str(256 * 2**20)}) as url:
        resp = http.post(f"{url}/push", json=body, timeout=120)
        assert resp.status_code == 204
        assert http.get(f"{url}/healthz", timeout=5).status_code == 200
    job = _job(stack, payload["job_id"])
    assert job["status"] == "failed" and job["error"]["error_class"] == "limit-exceeded"
    assert "MEDIA_MEMORY_LIMIT_BYTES=268435456" in job["error"]["reason"]
    assert job["stages"]["analyze"]["attempts"] == 1


def test_work_that_does_not_fit_the_instance_now_is_answered_503_and_left_for_redelivery(stack, http):
    # 100 MP RGBA declares 400 MB x 1.5; the instance has 650 MB, of which the worker itself uses some.
    payload = _seed(stack, bombs.big_png(10000, 10000, alpha=True, seed=9), "image/png")
    body = envelope(payload, "media-ingested.v1")
    with chaos.extra_instance(stack, "analyze", {"INSTANCE_MEMORY_BYTES": str(650 * 2**20)}) as url:
        resp = http.post(f"{url}/push", json=body, timeout=60)
        assert resp.status_code == 503 and "retried later" in resp.json()["detail"]
        assert http.get(f"{url}/healthz", timeout=5).status_code == 200
    job = _job(stack, payload["job_id"])
    assert job["status"] == "analyzing" and "error" not in job  # not failed: another instance may take it
