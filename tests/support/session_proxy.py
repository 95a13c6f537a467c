"""An HTTP proxy on 127.0.0.1 that cuts an upload's connection once, for the resume tests and the
big-upload bench. The client reaches it the ordinary way (`HTTP_PROXY`, which `requests` and so
`mediarelay submit` honour); it relays every request to the host the request names.

It also plays the two rules of GCS's resumable sessions that fake-gcs-server (v1.54) lacks, seen
here: a status query (`Content-Range: bytes */TOTAL`) there *finalizes* the object with the bytes
it has (a truncated original would become a job) and answers a Range one byte long; and a chunk
is appended wherever it starts (a chunk sent twice is stored twice). So, for session PUTs
(`upload_id=`), the proxy answers status queries itself from the offsets fake-gcs acknowledged
(308 + `Range: bytes=0-N`, none when nothing is held, 200 once complete) and refuses a chunk
that does not start at the persisted offset (400). Everything else reaches fake-gcs-server as sent.

The cut: after `cut_after` bytes of session chunk bodies have passed, the connection carrying
the next byte is shut down mid-body, once; the cut chunk is not forwarded (fake-gcs-server then
holds the chunks before it, as GCS would).
"""
from __future__ import annotations

import http.client
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}
CHUNK_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class CuttingSessionProxy:
    def __init__(self, cut_after: int | None = None):
        self.cut_after = cut_after
        self.passed = 0  # session chunk body bytes forwarded
        self.cuts = self.queries = 0
        self.chunk_starts: list[int] = []
        self.persisted: dict[str, int] = {}  # upload_id -> bytes fake-gcs-server acknowledged
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._relay()

            do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

            def _relay(self):
                url = urllib.parse.urlsplit(self.path)
                upload_id = dict(urllib.parse.parse_qsl(url.query)).get("upload_id")
                length = int(self.headers.get("Content-Length") or 0)
                span = self.headers.get("Content-Range", "")
                if self.command == "PUT" and upload_id and span.startswith("bytes */"):
                    self.rfile.read(length)
                    return self._status(upload_id, int(span.removeprefix("bytes */")))
                chunk = CHUNK_RANGE.fullmatch(span) if self.command == "PUT" and upload_id else None
                if chunk:
                    start = int(chunk.group(1))
                    with proxy.lock:
                        proxy.chunk_starts.append(start)
                        held = proxy.persisted.get(upload_id, 0)
                        cut_at = None
                        if proxy.cut_after is not None and not proxy.cuts and proxy.passed + length > proxy.cut_after:
                            proxy.cuts += 1
                            cut_at = proxy.cut_after - proxy.passed
                    if cut_at is not None:
                        self.rfile.read(cut_at)
                        self.connection.shutdown(socket.SHUT_RDWR)  # the network drops mid-body
                        self.close_connection = True
                        return
                    if start != held:
                        self.rfile.read(length)
                        return self._answer(400, {}, b"chunk does not start at the persisted offset")
                body = self.rfile.read(length) if length else None
                if chunk:
                    with proxy.lock:
                        proxy.passed += length
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
                try:
                    conn.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    answer = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
                finally:
                    conn.close()
                if chunk:
                    with proxy.lock:
                        if resp.status == 308:
                            proxy.persisted[upload_id] = int(resp.getheader("Range", "bytes=0--1").rpartition("-")[2]) + 1
                        elif resp.status in (200, 201):
                            proxy.persisted[upload_id] = int(chunk.group(3))
                self._answer(resp.status, answer, data)

            def _status(self, upload_id: str, total: int):
                with proxy.lock:
                    proxy.queries += 1
                    held = proxy.persisted.get(upload_id, 0)
                if held >= total:
                    return self._answer(200, {"Content-Type": "application/json"}, b"{}")
                return self._answer(308, {"Range": f"bytes=0-{held - 1}"} if held else {}, b"")

            def _answer(self, status: int, headers: dict, body: bytes):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
