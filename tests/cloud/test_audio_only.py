"""Audio-only uploads against the local cloud: the door answers 415 problem+json in words a person
reads; an M4A that comes in through a signed URL (no door) fails its job as unsupported-media."""
from __future__ import annotations

import uuid

import pytest

from services.media.mediatypes import AUDIO_ONLY
from tests.support.audio import audio_bytes

from .conftest import wait_for_status

AUDIO_REASON = "an audio-only file: mediarelay processes images and videos"


@pytest.mark.parametrize("name", ["mp3", "m4a", "wav"])  # magic bytes; a probe of the MP4's tracks; magic bytes
def test_an_audio_upload_is_refused_at_the_door_with_415(http, ingest_url, name):
    data = audio_bytes(name) + uuid.uuid4().bytes
    resp = http.post(f"{ingest_url}/v1/uploads", files={"file": (f"song.{name}", data)}, timeout=30)
    assert resp.status_code == 415, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert AUDIO_REASON in resp.json()["detail"]


def test_an_audio_only_mp4_through_a_signed_url_fails_as_unsupported_media(http, ingest_url):
    data = audio_bytes("m4a") + uuid.uuid4().bytes
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "video/mp4", "size": len(data),
                                                            "filename": "memo.m4a"}, timeout=10)
    assert grant.status_code == 201, grant.text
    g = grant.json()
    assert http.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code == 200
    job = wait_for_status(http, ingest_url, g["job_id"])
    assert job["status"] == "failed", job
    assert job["error"]["error_class"] == "unsupported-media"
    assert job["error"]["reason"] == AUDIO_REASON


def test_an_mp3_through_a_signed_url_fails_saying_it_is_audio_only(http, ingest_url):
    """Finalize sniffs the object's first bytes: an MP3 is named as such, not "no supported type"."""
    data = audio_bytes("mp3") + uuid.uuid4().bytes
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "video/mp4", "size": len(data),
                                                            "filename": "song.mp4"}, timeout=10)
    assert grant.status_code == 201, grant.text
    g = grant.json()
    assert http.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).status_code == 200
    job = wait_for_status(http, ingest_url, g["job_id"])
    assert job["status"] == "failed" and job["error"]["error_class"] == "unsupported-media", job
    assert job["error"]["reason"].startswith(AUDIO_ONLY) and "MP3" in job["error"]["reason"], job["error"]
