"""Attacks on the upload door, each refused without storing anything (real HTTP, gunicorn)."""
from __future__ import annotations

import hashlib
import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests
from google.cloud import storage
from google.cloud.firestore_v1.base_query import FieldFilter

from localcloud import samples
from services.ingest.clients import client_id_of
from services.ingest.jobs import JOB_KEYS, claim_job_id
from services.pipeline.blobs import BlobStore
from services.pipeline.jobstore import JobStore

from .conftest import TEST_MAX_UPLOAD_BYTES

BUCKET = "mediarelay-originals"


def _originals() -> set[str]:
    return {b.name for b in storage.Client().list_blobs(BUCKET, prefix="originals/")}


def _jpeg() -> bytes:
    return samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes


def _raw_request(url: str, head: str, body: bytes = b"") -> socket.socket:
    """A request written by hand, left open: the body may be cut short on purpose."""
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def _upload_head(stack, length: int) -> str:
    return (f"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {stack.api_key}\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {length}")


def test_chunked_body_over_the_limit_is_413_not_truncated(http, ingest_url):
    before = _originals()
    head = samples.jpeg_bytes(samples.photo("rocket"))

    def chunks():
        yield head
        sent = len(head)
        while sent < TEST_MAX_UPLOAD_BYTES + 1024 * 1024:  # 1 MiB over the limit
            yield b"\0" * 65536
            sent += 65536

    resp = http.post(f"{ingest_url}/v1/uploads", data=chunks(), headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert resp.status_code == 413, resp.text
    assert "MAX_UPLOAD_BYTES" in resp.json()["detail"]
    assert _originals() == before
    # A chunked body under the limit is fine.
    small = _jpeg()
    ok = http.post(f"{ingest_url}/v1/uploads", data=iter([small[:1000], small[1000:]]),
                   headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert ok.status_code == 202, ok.text






def test_filenames_are_sanitised_and_bounded(http, ingest_url, stack):
    nasty = "..\\../../etc/\x00\x1b[31m\u202egpj.exe<b onclick=x>\u200bphoto.jpg" + "A" * 400_000
    files = {"file": (nasty, _jpeg(), "application/octet-stream")}
    resp = http.post(f"{ingest_url}/v1/uploads", files=files, timeout=30)
    assert resp.status_code == 202, resp.text
    name = JobStore(stack.project).get(resp.json()["job_id"])["source"]["filename"]
    assert name == ("[31mgpj.exeb onclick=xphoto.jpg" + "A" * 400)[:200]  # MAX_FILENAME_CHARS
    assert not any(c in name for c in "\x00\x1b\u202e\u200b<>/\\")
    raw = http.post(f"{ingest_url}/v1/uploads", data=_jpeg(), timeout=30,
                    headers={"Content-Type": "image/jpeg", "X-Filename": "../x/\u00e9t\u00e9 2026.jpg"})
    assert JobStore(stack.project).get(raw.json()["job_id"])["source"]["filename"] == "\u00e9t\u00e9 2026.jpg"


@pytest.mark.parametrize("fields, setting", [
    ({f"f{i}": "x" for i in range(20)}, "MAX_FORM_PARTS"),
    ({"note": "x" * 100_000}, "MAX_FORM_MEMORY_BYTES"),
])
def test_413_names_the_limit_that_was_exceeded(http, ingest_url, fields, setting):
    before = _originals()
    resp = http.post(f"{ingest_url}/v1/uploads", data=fields, files={"file": ("a.jpg", _jpeg())}, timeout=30)
    assert resp.status_code == 413 and setting in resp.json()["detail"], resp.text
    assert "MAX_UPLOAD_BYTES" not in resp.json()["detail"]
    assert _originals() == before


@pytest.mark.parametrize("size", ["1000", 1000.0, 1.5, -1, 0, True, None, [1]])
def test_signed_grant_size_must_be_a_positive_integer(http, ingest_url, size):
    resp = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": size}, timeout=10)
    assert resp.status_code == 400 and "positive integer" in resp.json()["detail"], resp.text


def _incoming(job_id: str):
    return storage.Client().bucket(BUCKET).get_blob(f"incoming/{job_id}")


def _until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_refused_and_reused_signed_uploads_leave_nothing_in_incoming(http, ingest_url, stack):
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": 100}, timeout=10).json()
    assert requests.put(grant["upload_url"], data=b"MZ not media", headers=grant["headers"], timeout=30).ok
    assert _until(lambda: (http.get(grant["status_url"], timeout=10).json().get("status")) == "failed")
    assert _until(lambda: _incoming(grant["job_id"]) is None), "a refused upload must not stay in incoming/"

    data = _jpeg()
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": len(data)},
                      timeout=10).json()
    assert requests.put(grant["upload_url"], data=data, headers=grant["headers"], timeout=30).ok
    assert _until(lambda: http.get(grant["status_url"], timeout=10).status_code == 200)
    source = JobStore(stack.project).get(grant["job_id"])["source"]
    # The same signed URL used again, with other bytes: no second job, and nothing kept.
    assert requests.put(grant["upload_url"], data=_jpeg(), headers=grant["headers"], timeout=30).ok
    assert _until(lambda: _incoming(grant["job_id"]) is None), "a reused signed URL's object must be deleted"
    assert JobStore(stack.project).get(grant["job_id"])["source"] == source


def test_put_if_absent_adopts_only_identical_bytes(stack):
    blobs = BlobStore(stack.project)
    name = f"originals/adopt-{uuid.uuid4().hex}"
    first = blobs.put_if_absent(BUCKET, name, b"old bytes", "image/jpeg")
    again = blobs.put_if_absent(BUCKET, name, b"old bytes", "image/jpeg")
    assert first.created and not again.created and again.generation == first.generation
    other = blobs.put_if_absent(BUCKET, name, b"other bytes", "image/jpeg")
    assert other.created and other.generation != first.generation
    assert storage.Client().bucket(BUCKET).blob(name).download_as_bytes() == b"other bytes"


def test_an_old_original_under_a_returning_job_id_is_never_analysed_as_the_new_upload(http, ingest_url, stack):
    """The job document has expired (TTL) while its original and its key record remain; the
    same client uploads under the same Idempotency-Key: the new bytes are stored and used."""
    from services.common.config import Settings
    from services.pipeline.runtime import Runtime

    rt = Runtime.build(Settings.from_env())
    client_id = client_id_of(stack.api_key)
    key = f"returning-{uuid.uuid4().hex}"
    new = _jpeg()
    job_id, _, _ = claim_job_id(rt, client_id, "key", key, hashlib.sha256(new).hexdigest())
    stale = _jpeg()  # what an expired job left at originals/<job_id>
    rt.blobs.put_if_absent(BUCKET, f"originals/{job_id}", stale, "image/jpeg")
    resp = http.post(f"{ingest_url}/v1/uploads", data=new, timeout=30,
                     headers={"Content-Type": "image/jpeg", "Idempotency-Key": key})
    assert resp.status_code == 202 and resp.json()["job_id"] == job_id
    source = JobStore(stack.project).get(job_id)["source"]
    stored = storage.Client().bucket(BUCKET).blob(source["name"], generation=int(source["generation"]))
    assert stored.download_as_bytes() == new
    # Other bytes under that key are refused, as before; the key record says which bytes it made.
    other = http.post(f"{ingest_url}/v1/uploads", data=_jpeg(), timeout=30,
                      headers={"Content-Type": "image/jpeg", "Idempotency-Key": key})
    assert other.status_code == 422
    assert rt.jobs.client.collection(JOB_KEYS).where(filter=FieldFilter("job_id", "==", job_id)).get()
