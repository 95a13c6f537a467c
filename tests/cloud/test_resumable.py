"""Resumable uploads: a GCS resumable session created by ingest, filled in chunks, resumed
after a dropped connection.

fake-gcs-server implements chunked sessions (308 + Range after each chunk, the object and its
finalize notification once the last chunk is in) but not the rest of the protocol faithfully:
a status query (`Content-Range: bytes */TOTAL`) *finalizes* the object with what it has, the
session's content type and total size are not enforced, and its Range is off by one after a
query. So the resume itself is tested against a stand-in that speaks GCS's documented
protocol (below) and hands the completed bytes to fake-gcs's real session, from where the
normal path (notification -> ingest -> the chain) makes the job.
"""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
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


class GcsResumableStandIn:
    """GCS's resumable protocol: chunks at the persisted offset answer 308 + `Range: bytes=0-N`;
    `bytes */TOTAL` asks the state without changing it; the last chunk completes (200). The
    first attempt at chunk 2 is cut mid-body (the connection dropped), persisting nothing."""

    def __init__(self, real_session: str, total: int):
        self.real, self.total = real_session, total
        self.data = bytearray()
        self.drops = self.queries = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                span = self.headers.get("Content-Range", "")
                if span == f"bytes */{outer.total}":
                    outer.queries += 1
                    self.rfile.read(length)
                    return self._state()
                start, end, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", span).groups())
                if start == CHUNK and not outer.drops:
                    outer.drops += 1
                    self.rfile.read(length // 2)
                    self.connection.shutdown(2)  # the connection drops mid-chunk
                    self.close_connection = True
                    return
                body = self.rfile.read(length)
                if start != len(outer.data) or total != outer.total:
                    return self._reply(400, b"chunk does not start at the persisted offset")
                outer.data += body
                if len(outer.data) == outer.total:
                    done = requests.put(outer.real, data=bytes(outer.data), timeout=30,
                                        headers={"Content-Range": f"bytes 0-{outer.total - 1}/{outer.total}"})
                    return self._reply(done.status_code, done.content)
                return self._state()

            def _state(self):
                if len(outer.data) == outer.total:
                    return self._reply(200, b"{}")
                headers = {"Range": f"bytes=0-{len(outer.data) - 1}"} if outer.data else {}
                return self._reply(308, b"", headers)

            def _reply(self, status, body, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/session"

    def close(self):
        self.server.shutdown()


def test_a_dropped_connection_is_resumed_and_the_upload_completes_as_one_job(stack, http, ingest_url, tmp_path):
    path = _photo(tmp_path, "resumed.jpg")
    total = path.stat().st_size
    grant = http.post(f"{ingest_url}/v1/upload-urls", timeout=10, json={
        "content_type": "image/jpeg", "size": total, "filename": path.name, "resumable": True}).json()
    assert grant["resumable"] is True and "upload_id=" in grant["upload_url"]
    standin = GcsResumableStandIn(grant["upload_url"], total)
    try:
        client = IngestClient(ingest_url, api_key=stack.api_key, chunk_bytes=CHUNK)
        client.upload_resumable(standin.url, path, grant["headers"])
        assert standin.drops == 1 and standin.queries >= 1  # it asked where to go on, after the drop
    finally:
        standin.close()
    doc = _wait(client, grant["job_id"])
    assert doc["status"] == "completed" and doc["source"]["size"] == total
    jobs = [j for j in http.get(f"{ingest_url}/v1/jobs", params={"limit": 100}, timeout=10).json()["jobs"]
            if j["source"].get("filename") == "resumed.jpg"]
    assert [j["job_id"] for j in jobs] == [grant["job_id"]]  # one job, not one per attempt
    source = JobStore(stack.project).get(grant["job_id"])["source"]
    assert storage.Client().bucket(source["bucket"]).blob(source["name"]).download_as_bytes() == path.read_bytes()
