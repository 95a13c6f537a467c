"""Near-duplicates and placeholders at upload, against the stack: duplicate_of in the job view, and what
on_duplicate=skip and =reject do (direct uploads and a signed one)."""
from __future__ import annotations

import requests
from PIL import Image

from localcloud import samples

from .conftest import wait_for_status


def _jpeg(im: Image.Image, quality: int = 90) -> bytes:
    return samples.jpeg_bytes(im, quality=quality)


def _upload(session, url, data, **params):
    return session.post(f"{url}/v1/uploads", data=data, params=params, headers={"Content-Type": "image/jpeg"}, timeout=30)


def test_a_recompressed_smaller_copy_names_the_first_upload_and_skip_renders_nothing(stack, ingest_url, new_client):
    _, session, _ = new_client("near-duplicates")
    photo = samples.photo("chelsea")
    first = _upload(session, ingest_url, _jpeg(photo))
    assert first.status_code == 202, first.text
    original = wait_for_status(session, ingest_url, first.json()["job_id"])
    assert original["status"] == "completed" and "duplicate_of" not in original
    assert len(original["placeholders"]["thumbhash"]) <= 40 and len(original["placeholders"]["blurhash"]) == 28

    smaller = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS)
    copy = _upload(session, ingest_url, _jpeg(smaller, quality=60))
    job = wait_for_status(session, ingest_url, copy.json()["job_id"])
    assert job["status"] == "completed" and job["renditions"]  # process (the default): rendered as usual
    assert (job["duplicate_of"], job["duplicate_action"]) == (original["job_id"], "recorded") and job["distance"] <= 11

    webp_like = _jpeg(photo, quality=75)
    skipped = wait_for_status(session, ingest_url, _upload(session, ingest_url, webp_like, on_duplicate="skip").json()["job_id"])
    assert skipped["status"] == "completed" and skipped["renditions"] == []
    assert (skipped["duplicate_of"], skipped["duplicate_action"]) == (original["job_id"], "skipped")
    assert skipped["skipped"] and all(original["job_id"] in s["reason"] for s in skipped["skipped"])

    # another client's upload of the same picture is nobody's duplicate
    _, other, _ = new_client("someone-else")
    theirs = wait_for_status(other, ingest_url, _upload(other, ingest_url, _jpeg(photo)).json()["job_id"])
    assert "duplicate_of" not in theirs


def test_reject_is_409_for_the_same_bytes_and_a_failed_job_naming_the_original_for_a_near_copy(stack, ingest_url, new_client):
    _, session, _ = new_client("rejects-duplicates")
    photo = samples.photo("rocket")
    data = _jpeg(photo)
    first = _upload(session, ingest_url, data)
    original = wait_for_status(session, ingest_url, first.json()["job_id"])

    again = _upload(session, ingest_url, data, on_duplicate="reject")
    assert again.status_code == 409 and again.headers["Content-Type"] == "application/problem+json"
    assert again.json()["job_id"] == original["job_id"] and again.json()["status_url"].endswith(original["job_id"])

    near = _upload(session, ingest_url, _jpeg(photo, quality=60), on_duplicate="reject")
    assert near.status_code == 202  # other bytes: only analysis can tell
    failed = wait_for_status(session, ingest_url, near.json()["job_id"])
    assert failed["status"] == "failed" and failed["error"]["error_class"] == "duplicate"
    assert f"near-duplicate of job {original['job_id']}" in failed["error"]["reason"]

    grant = session.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": len(data) + 9,
                                                              "on_duplicate": "reject"}, timeout=10).json()
    put = requests.put(grant["upload_url"], data=_jpeg(photo, quality=70), headers=grant["headers"], timeout=30)
    assert put.status_code == 200, put.text
    signed = wait_for_status(session, ingest_url, grant["job_id"])
    assert signed["status"] == "failed" and original["job_id"] in signed["error"]["reason"]

    bad = _upload(session, ingest_url, data, on_duplicate="maybe")
    assert bad.status_code == 400 and bad.json()["parameter"] == "on_duplicate"
