"""Public events and webhooks carry HTTPS links to our API only (media-events.v3), over every event
type — completed image, completed video, failed, deleted — and DELETE erases a job everywhere.

Against the local cloud: the events a subscriber of `media-events` gets (a pull tap), the bodies a
webhook receiver on 127.0.0.1 gets, the buckets listed after a delete."""
from __future__ import annotations

import json
import time

import pytest
from google.cloud import storage

from localcloud import samples
from localcloud.taps import TopicTap
from services.client import IngestClient
from services.pipeline.schemas import validate
from tests.cloud.conftest import wait_for_status
from tests.cloud.test_webhooks import Receiver
from tests.support.longclip import long_clip

BUCKETS = ("mediarelay-originals", "mediarelay-renditions")
ERASED_WITHIN_S = 60


@pytest.fixture(scope="module")
def receiver(http, ingest_url):
    r = Receiver()
    # The local client's endpoints that other tests registered would leave no room (WEBHOOK_MAX_ENDPOINTS).
    for old in http.get(f"{ingest_url}/v1/webhooks", timeout=10).json().get("webhooks", []):
        http.delete(f"{ingest_url}/v1/webhooks/{old['id']}", timeout=10)
    resp = http.post(f"{ingest_url}/v1/webhooks", json={"url": r.url, "events": ["completed", "failed", "deleted", "playable"]},
                     timeout=10)
    assert resp.status_code == 201, resp.text
    yield r
    http.delete(f"{ingest_url}/v1/webhooks/{resp.json()['id']}", timeout=10)
    r.close()


@pytest.fixture(scope="module")
def v2_tap(stack):
    tap = TopicTap(stack.project, "media-events-v2")
    yield tap
    tap.close()


def _upload(http, ingest_url, data: bytes, content_type: str) -> str:
    resp = http.post(f"{ingest_url}/v1/uploads", data=data, headers={"Content-Type": content_type}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def _objects_of(stack, job_id: str) -> list[str]:
    client = storage.Client(project=stack.project)
    return [f"{b}/{o.name}" for b in BUCKETS for o in client.list_blobs(b) if job_id in o.name]


def _clean(payload: dict, schemas_dir) -> None:
    text = json.dumps(payload)
    assert "gs://" not in text, text
    for bucket in BUCKETS:
        assert bucket not in text, text
    validate(schemas_dir, "media-events.v3", payload)


def test_every_event_type_reaches_subscribers_and_webhooks_with_https_links_only(stack, http, ingest_url, events,
                                                                                   receiver, v2_tap, tmp_path):
    from services.common.config import REPO_ROOT

    schemas = REPO_ROOT / "schemas"
    image = _upload(http, ingest_url, samples.jpeg_bytes(samples.photo()), "image/jpeg")
    video = _upload(http, ingest_url, samples.video_mp4(tmp_path / "v.mp4"), "video/mp4")
    broken = _upload(http, ingest_url, samples.truncated_jpeg(b"events"), "image/jpeg")
    for job_id, status in ((image, "completed"), (video, "completed"), (broken, "failed")):
        assert wait_for_status(http, ingest_url, job_id, timeout=150)["status"] == status
    token_url = http.post(f"{ingest_url}/v1/jobs/{video}/playback", timeout=10).json()["playback_url"]
    assert http.get(token_url, timeout=10).status_code == 200

    for job_id in (image, video):
        assert http.delete(f"{ingest_url}/v1/jobs/{job_id}", timeout=10).status_code == 202
    started = time.monotonic()
    while (_objects_of(stack, image) or _objects_of(stack, video)) and time.monotonic() - started < ERASED_WITHIN_S:
        time.sleep(0.5)
    assert _objects_of(stack, image) == [] and _objects_of(stack, video) == [], "objects left after a delete"
    print(f"erased within {time.monotonic() - started:.1f} s")

    found = events.wait_for_jobs([image, video, broken], timeout=60, with_playable=True)
    deadline = time.monotonic() + 30
    while not (len(found[image]) == 2 and len(found[video]) == 3) and time.monotonic() < deadline:
        found = events.wait_for_jobs([image, video, broken], timeout=5, with_playable=True)
        time.sleep(0.3)
    assert [e["status"] for e in found[image]] == ["completed", "deleted"]
    assert [e["status"] for e in found[video]] == ["playable", "completed", "deleted"]  # playable before the final event
    assert [e["status"] for e in found[broken]] == ["failed"]
    for job_id in (image, video, broken):
        for e in found[job_id]:
            _clean(e, schemas)
    assert found[video][0]["links"]["playback"] == f"{ingest_url}/v1/jobs/{video}/playback"
    completed_video = found[video][1]
    assert completed_video["links"]["playback"] == f"{ingest_url}/v1/jobs/{video}/playback"
    # A rendition link works with the client's own credential (before the delete it was a 302; now 410).
    assert http.get(completed_video["renditions"][0]["url"], allow_redirects=False, timeout=10).status_code == 410

    # The local client's endpoint also hears of its other jobs (other tests'): these three are ours.
    deadline, bodies = time.monotonic() + 60, []
    while len(bodies) < 6 and time.monotonic() < deadline:
        bodies = [b for b in (json.loads(r["body"]) for r in receiver.requests) if b["job_id"] in (image, video, broken)]
        time.sleep(0.2)
    assert sorted((b["job_id"], b["status"]) for b in bodies) == sorted(
        [(image, "completed"), (image, "deleted"), (video, "playable"), (video, "completed"), (video, "deleted"),
         (broken, "failed")])
    for b in bodies:
        _clean(b, schemas)

    # v2 beside v3 for one release: the final events only, in the old shape.
    v2 = v2_tap.wait_for_jobs([image, video, broken], timeout=30)
    assert [e["status"] for e in v2[image]] == ["completed"] and v2[broken][0]["status"] == "failed"

    # Deleted: 410 to its owner, deleting again is harmless, the old playback token stops working.
    assert http.get(f"{ingest_url}/v1/jobs/{image}", timeout=10).status_code == 410
    assert http.delete(f"{ingest_url}/v1/jobs/{image}", timeout=10).status_code == 202
    assert http.get(token_url, timeout=10).status_code in (404, 410)
    assert http.post(f"{ingest_url}/v1/jobs/{video}/playback", timeout=10).status_code == 410
    time.sleep(3)
    events.drain()
    assert [e["status"] for _, e in events.for_job(image)] == ["completed", "deleted"], "a second deleted event"


def test_deleting_a_running_job_cancels_it_then_erases_it(stack, http, ingest_url, events):
    clip = long_clip()
    job_id = IngestClient(ingest_url, api_key=stack.api_key).submit(clip.path, signed=True)["job_id"]
    wait_for_status(http, ingest_url, job_id, ("rendering",), timeout=300)
    time.sleep(3)  # render's segments are in their media children
    assert http.delete(f"{ingest_url}/v1/jobs/{job_id}", timeout=30).status_code == 202
    started = time.monotonic()
    while _objects_of(stack, job_id) and time.monotonic() - started < ERASED_WITHIN_S:
        time.sleep(0.5)
    assert _objects_of(stack, job_id) == [], "objects left after deleting a running job"
    found = events.wait_for_jobs([job_id], timeout=30)[job_id]
    deadline = time.monotonic() + 30
    while len(found) < 2 and time.monotonic() < deadline:
        found = events.wait_for_jobs([job_id], timeout=5)[job_id]
        time.sleep(0.3)
    assert [e["status"] for e in found] == ["failed", "deleted"]
    assert found[0]["error"]["error_class"] == "cancelled"
    time.sleep(5)  # a stage cancelled under it writes nothing after the erasure
    assert _objects_of(stack, job_id) == []
