"""Big uploads: a V4 signed PUT URL straight to storage, then the bucket's finalize notification."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from google.cloud import storage

from localcloud import samples
from services.pipeline.jobstore import JobStore


def _wait_final(http, status_url, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = http.get(status_url, timeout=10)
        if resp.status_code == 200 and resp.json()["status"] in ("completed", "failed"):
            return resp.json()
        time.sleep(0.2)
    raise AssertionError(f"{status_url} did not finish in {timeout} s")


def _grant(http, stack, content_type="image/jpeg", size=1000, **headers):
    return http.post(f"{stack.url('ingest')}/v1/upload-urls", json={"content_type": content_type, "size": size,
                                                                      "filename": "../../etc/big photo.jpg"},
                     headers=headers, timeout=10)


def test_signed_upload_becomes_a_completed_job(http, stack, events):
    data = samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes
    grant = _grant(http, stack, size=len(data))
    assert grant.status_code == 201, grant.text
    g = grant.json()
    assert g["method"] == "PUT" and "X-Goog-Signature=" in g["upload_url"]
    assert http.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code == 200
    job = _wait_final(http, g["status_url"])
    assert job["status"] == "completed" and job["job_id"] == g["job_id"]
    assert job["source"]["size"] == len(data) and "name" not in job["source"]  # no object names in public
    assert JobStore(stack.project).get(g["job_id"])["source"]["name"] == f"originals/{g['job_id']}"
    assert job["source"]["filename"] == "big photo.jpg"  # no path from the client survives
    assert storage.Client().bucket("mediarelay-originals").get_blob(f"incoming/{g['job_id']}") is None
    found = events.wait_for_jobs([g["job_id"]], timeout=30)
    assert [e["status"] for e in found[g["job_id"]]] == ["completed"]


def test_signed_upload_of_something_that_is_not_media_fails_the_job_with_a_reason(http, stack, events):
    grant = _grant(http, stack).json()
    assert http.put(grant["upload_url"], data=b"MZ\x90\x00 an executable", headers=grant["headers"], timeout=30).ok
    job = _wait_final(http, grant["status_url"])
    assert job["status"] == "failed"
    assert job["error"]["stage"] == "ingest" and job["error"]["error_class"] == "unsupported-media"
    [event] = events.wait_for_jobs([grant["job_id"]], timeout=30)[grant["job_id"]]
    assert event["status"] == "failed" and event["error"]["error_class"] == "unsupported-media"


@pytest.mark.parametrize(
    "body, status",
    [({"content_type": "application/pdf", "size": 10}, 415),
     ({"content_type": "video/mp4", "size": 10 * 1024**4}, 413),
     ({"size": 10}, 400)],
)
def test_upload_url_requests_are_checked(http, stack, body, status):
    resp = http.post(f"{stack.url('ingest')}/v1/upload-urls", json=body, timeout=10)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_cli_submit_signed_waits_for_the_job(stack, tmp_path):
    path = tmp_path / "clip.mp4"
    samples.video_mp4(path, seconds=1.0)
    out = subprocess.run([sys.executable, "-m", "services.cli", "submit", str(path), "--signed", "--wait",
                          "--url", stack.url("ingest")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "\tcompleted\t" in out.stdout


def test_an_idempotency_key_that_already_made_a_job_is_409_with_its_status_url(http, stack):
    key = {"Idempotency-Key": f"signed-{uuid.uuid4()}"}
    data = samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes
    g = _grant(http, stack, size=len(data), **key).json()
    again = _grant(http, stack, size=len(data), **key).json()
    assert again["job_id"] == g["job_id"]  # no job yet: the same upload, granted again
    assert http.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code == 200
    assert _wait_final(http, g["status_url"])["status"] == "completed"
    done = _grant(http, stack, size=len(data), **key)
    assert done.status_code == 409 and done.json()["status_url"] == g["status_url"]
