"""Resumable uploads: a GCS resumable session created by ingest, filled in chunks.

fake-gcs-server implements chunked sessions (308 + Range after each chunk, the object and its
finalize notification once the last chunk is in) but not the status query a resume needs; the
resume after a cut connection is tested in test_big_uploads.py (see tests/support/session_proxy.py).
"""
from __future__ import annotations

from google.cloud import storage

from localcloud import samples
from services.client import IngestClient
from services.pipeline.jobstore import JobStore

CHUNK = 256 * 1024


def _photo(tmp_path, name="big.jpg"):
    path = tmp_path / name
    path.write_bytes(samples.large_jpeg(3000, 2000))
    assert path.stat().st_size > 2 * CHUNK  # three chunks at least
    return path


def _wait(client: IngestClient, job_id: str, timeout=120) -> dict:
    docs = client.wait([job_id], timeout=timeout)
    return docs[job_id]


def test_resumable_session_in_chunks_completes_as_one_job(stack, tmp_path):
    path = _photo(tmp_path)
    client = IngestClient(stack.url("ingest"), api_key=stack.api_key, chunk_bytes=CHUNK)
    seen = []
    resp = client.submit_signed(path, progress=lambda sent, total: seen.append(sent))
    assert seen == sorted(seen) and len(seen) >= 3 and seen[-1] == path.stat().st_size
    doc = _wait(client, resp["job_id"])
    assert doc["status"] == "completed" and doc["source"]["size"] == path.stat().st_size
    assert doc["source"]["filename"] == "big.jpg"
    source = JobStore(stack.project).get(resp["job_id"])["source"]
    assert storage.Client().bucket(source["bucket"]).blob(source["name"]).download_as_bytes() == path.read_bytes()
    assert storage.Client().bucket(source["bucket"]).get_blob(f"incoming/{resp['job_id']}") is None


def test_upload_url_asks_resumable_as_a_boolean(http, ingest_url):
    resp = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": 10, "resumable": "yes"},
                     timeout=10)
    assert resp.status_code == 400 and "resumable" in resp.json()["detail"]
