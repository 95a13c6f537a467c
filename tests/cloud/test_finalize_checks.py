"""Finalize does not trust the bucket alone: a session granted to a client revoked since, or an
object larger than its grant, ends as a failed job with a reason, its object removed, one
`failed` event. (fake-gcs-server enforces neither a signed size nor a session's size, so these
objects do arrive here, as they could in production through a bug or a changed policy.)"""
from __future__ import annotations

import time
import uuid

import requests
from google.cloud import storage

from localcloud import samples
from services.ingest.clients import ClientStore
from services.pipeline.jobstore import JobStore

BUCKET = "mediarelay-originals"


def _jpeg() -> bytes:
    return samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes


def _final(stack, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = JobStore(stack.project).get(job_id)
        if job and job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def _gone(job_id: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if storage.Client().bucket(BUCKET).get_blob(f"incoming/{job_id}") is None:
            return True
        time.sleep(0.3)
    return False


def _grant(session, stack, size: int, resumable: bool) -> dict:
    resp = session.post(f"{stack.url('ingest')}/v1/upload-urls",
                        json={"content_type": "image/jpeg", "size": size, "resumable": resumable}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _assert_refused(stack, events, job_id: str, words: str) -> dict:
    job = _final(stack, job_id)
    assert job["status"] == "failed", job
    assert job["error"]["stage"] == "ingest" and words in job["error"]["reason"], job["error"]
    assert _gone(job_id), "a refused upload must not stay in incoming/"
    assert storage.Client().bucket(BUCKET).get_blob(f"originals/{job_id}") is None
    found = events.wait_for_jobs([job_id], timeout=30)[job_id]
    time.sleep(2)  # a second event would come now
    assert [e["status"] for e in events.wait_for_jobs([job_id], timeout=1)[job_id]] == ["failed"], found
    return job


def test_a_session_granted_before_its_client_was_revoked_makes_no_job_after_it(stack, new_client, events):
    client_id, c, _ = new_client("revoked-mid-upload")
    data = _jpeg()
    g = _grant(c, stack, len(data), resumable=True)
    assert ClientStore(stack.project, cache_seconds=0).revoke(client_id)
    assert requests.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code in (200, 201)
    job = _assert_refused(stack, events, g["job_id"], "revoked")
    assert job["error"]["error_class"] == "forbidden"


def test_an_object_larger_than_its_signed_grant_is_refused(stack, http, events):
    data = _jpeg()
    g = _grant(http, stack, 1000, resumable=False)
    assert requests.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).ok
    job = _assert_refused(stack, events, g["job_id"], "1000 bytes")
    assert job["error"]["error_class"] == "limit-exceeded"


def test_an_object_larger_than_its_resumable_grant_is_refused(stack, http, events):
    data = _jpeg()
    g = _grant(http, stack, 1000, resumable=True)
    assert requests.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code in (200, 201)
    job = _assert_refused(stack, events, g["job_id"], "1000 bytes")
    assert job["error"]["error_class"] == "limit-exceeded"
