"""A small HTTP client of ingest's public API, used by the CLI and the demo run."""
from __future__ import annotations

import mimetypes
import os
import sys
import time
from pathlib import Path

import requests

FINAL = ("completed", "failed")
# Cloud Run stops HTTP/1 request bodies at 32 MiB: anything bigger goes through a resumable session
# (ingest's MAX_UPLOAD_BYTES may be set lower: $MEDIARELAY_DIRECT_MAX_BYTES follows it).
DIRECT_UPLOAD_LIMIT = 32 * 1024 * 1024
GCS_CHUNK_MULTIPLE = 256 * 1024  # GCS: every chunk of a session but the last is a multiple of this
RESUMABLE_CHUNK_BYTES = 32 * GCS_CHUNK_MULTIPLE  # 8 MiB: what a dropped connection costs at most
RESUME_ATTEMPTS = 5


class _ProgressReader:
    """File wrapper that reports upload progress as requests reads it (Content-Length kept)."""

    def __init__(self, path: Path, report):
        self._f = open(path, "rb")
        self._size = path.stat().st_size
        self._sent = 0
        self._report = report

    def __len__(self):
        return self._size

    def read(self, n=-1):
        chunk = self._f.read(n if n and n > 0 else 1 << 16)
        self._sent += len(chunk)
        self._report(self._sent, self._size)
        return chunk

    def close(self):
        self._f.close()


def auth_headers(api_key: str | None = None) -> dict:
    """`Authorization: Bearer <key>`, the key given or $MEDIARELAY_API_KEY (none if neither)."""
    key = api_key or os.environ.get("MEDIARELAY_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


class IngestClient:
    def __init__(self, base_url: str | None = None, timeout: float = 60.0, api_key: str | None = None,
                 chunk_bytes: int = RESUMABLE_CHUNK_BYTES, direct_max_bytes: int | None = None):
        if chunk_bytes <= 0 or chunk_bytes % GCS_CHUNK_MULTIPLE:
            raise ValueError(f"chunk size {chunk_bytes} is not a positive multiple of 256 KiB ({GCS_CHUNK_MULTIPLE} bytes)")
        self.chunk_bytes = chunk_bytes
        self.direct_max_bytes = direct_max_bytes or int(os.environ.get("MEDIARELAY_DIRECT_MAX_BYTES") or DIRECT_UPLOAD_LIMIT)
        self.base_url = (base_url or os.environ.get("MEDIARELAY_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Only ever sent to ingest: the signed storage URLs carry their own authorization.
        self._auth = auth_headers(api_key)

    def _api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {**self._auth, **kwargs.pop("headers", {})}
        return self.session.request(method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout, **kwargs)

    def submit(self, path: Path, idempotency_key: str | None = None, progress=None, signed: bool | None = None,
               on_duplicate: str = "process") -> dict:
        """Upload `path`; through a resumable session when asked or when it is too big for a request body.
        `on_duplicate`: process | skip | reject a near-duplicate of an earlier upload (docs/api.md)."""
        if signed or (signed is None and path.stat().st_size > self.direct_max_bytes):
            return self.submit_signed(path, idempotency_key, progress, on_duplicate=on_duplicate)
        headers = {
            "Content-Type": _content_type(path),
            "X-Filename": path.name,
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = _ProgressReader(path, progress or (lambda sent, total: None))
        try:
            resp = self._api("POST", "/v1/uploads", data=body, headers=headers, params={"on_duplicate": on_duplicate})
        finally:
            body.close()
        return _json_or_raise(resp)

    def submit_signed(self, path: Path, idempotency_key: str | None = None, progress=None,
                      resumable: bool = True, on_duplicate: str = "process") -> dict:
        """Straight to GCS: a resumable session (resumed after a dropped connection) or one
        signed PUT."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        content_type = _content_type(path)
        grant = _json_or_raise(self._api(
            "POST", "/v1/upload-urls", headers=headers,
            json={"content_type": content_type, "size": path.stat().st_size, "filename": path.name,
                  "resumable": resumable, "on_duplicate": on_duplicate}))
        if grant.get("resumable"):
            self.upload_resumable(grant["upload_url"], path, grant["headers"], progress)
            return {"job_id": grant["job_id"], "status": "uploaded", "status_url": grant["status_url"]}
        body = _ProgressReader(path, progress or (lambda sent, total: None))
        try:
            resp = self.session.put(grant["upload_url"], data=body, headers=grant["headers"], timeout=self.timeout)
        finally:
            body.close()
        if resp.status_code >= 400:
            raise APIError(resp.status_code, {"title": "upload to storage failed", "detail": resp.text[:300]})
        return {"job_id": grant["job_id"], "status": "uploaded", "status_url": grant["status_url"]}

    def upload_resumable(self, session_url: str, path: Path, headers: dict, progress=None) -> None:
        """PUT `path` to a GCS resumable session in chunks. After a dropped connection or a 5xx,
        ask the session how much it has (`Content-Range: bytes */TOTAL` -> 308 + Range) and go
        on from there, up to RESUME_ATTEMPTS times in a row, with backoff. `progress(sent, total)`
        hears the bytes the session holds; its `resumed(offset, total)`, if it has one, each resume."""
        total = path.stat().st_size
        report = progress or (lambda sent, total: None)
        resumed = getattr(progress, "resumed", lambda offset, total: None)
        offset, failures = 0, 0
        with open(path, "rb") as f:
            while True:
                resp = None
                try:
                    if failures:
                        time.sleep(min(8.0, 0.25 * 2 ** failures))
                        persisted = self._persisted(session_url, total)
                        if persisted is None:
                            report(total, total)
                            return  # the session already holds the whole object
                        offset = persisted
                        resumed(offset, total)
                    f.seek(offset)
                    chunk = f.read(self.chunk_bytes)
                    end = offset + len(chunk) - 1
                    resp = self.session.put(session_url, data=chunk, timeout=self.timeout, headers={
                        **headers, "Content-Range": f"bytes {offset}-{end}/{total}"})
                except requests.RequestException:
                    pass
                if resp is not None and resp.status_code in (200, 201):
                    report(total, total)
                    return
                if resp is not None and resp.status_code == 308:
                    offset, failures = _range_end(resp) + 1, 0
                    report(offset, total)
                    continue
                if resp is not None and resp.status_code < 500 and resp.status_code != 429:
                    raise APIError(resp.status_code, {"title": "upload to storage failed", "detail": resp.text[:300]})
                failures += 1
                if failures > RESUME_ATTEMPTS:
                    raise APIError(503, {"title": "upload to storage failed",
                                         "detail": f"no progress after {RESUME_ATTEMPTS} attempts to resume"})

    def _persisted(self, session_url: str, total: int) -> int | None:
        """Bytes the session holds (None: it is complete), by GCS's status query."""
        resp = self.session.put(session_url, headers={"Content-Range": f"bytes */{total}"}, timeout=self.timeout)
        if resp.status_code in (200, 201):
            return None
        if resp.status_code == 308:
            return _range_end(resp) + 1
        if resp.status_code >= 500 or resp.status_code == 429:
            raise requests.ConnectionError(f"status query answered {resp.status_code}")
        raise APIError(resp.status_code, {"title": "resumable session lost", "detail": resp.text[:300]})

    def status(self, job_id: str) -> dict:
        return _json_or_raise(self._api("GET", f"/v1/jobs/{job_id}"))

    def playback(self, job_id: str) -> dict:
        """{playback_url, storyboard_url, expires_at}: the job's HLS ladder with an expiring token."""
        return _json_or_raise(self._api("POST", f"/v1/jobs/{job_id}/playback"))

    def signing_keys(self) -> dict:
        """{client_id, keys: [{kid, secret, current}]}: this client's secrets for derivative-image URLs."""
        return _json_or_raise(self._api("GET", "/v1/signing-keys"))

    def image_url(self, job_id: str, options: str, keys: dict | None = None) -> str:
        """A signed derivative-image URL (`options` such as "w:800/h:600/fit:cover/format:auto"),
        signed with the current key. Pass `keys` (signing_keys()) to sign many without asking again;
        a page's server keeps them and signs offline (services/ingest/derivative_url.py, docs/api.md)."""
        from .ingest.derivative_url import signed_path

        keys = keys or self.signing_keys()
        current = next(k for k in keys["keys"] if k["current"])
        return self.base_url + signed_path(current["kid"], keys["client_id"], current["secret"], options, job_id)

    def stats(self, days: int = 7, everyone: bool = False) -> dict:
        return _json_or_raise(self._api("GET", "/v1/stats", params={"days": days, "all": str(everyone).lower()}))

    def jobs(self, status: str | None = None, limit: int = 20, cursor: str | None = None) -> dict:
        params = {k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v}
        return _json_or_raise(self._api("GET", "/v1/jobs", params=params))

    def webhook(self, action: str, endpoint_id: str | None = None, url: str | None = None,
                events: list[str] | None = None) -> dict:
        """`mediarelay webhooks add|list|remove|rotate` over /v1/webhooks."""
        if action == "add":
            body = {"url": url, **({"events": events} if events else {})}
            return _json_or_raise(self._api("POST", "/v1/webhooks", json=body))
        if action == "list":
            return _json_or_raise(self._api("GET", "/v1/webhooks"))
        if action == "rotate":
            return _json_or_raise(self._api("POST", f"/v1/webhooks/{endpoint_id}/rotate"))
        resp = self._api("DELETE", f"/v1/webhooks/{endpoint_id}")
        return {} if resp.status_code == 204 else _json_or_raise(resp)

    def wait(self, job_ids: list[str], timeout: float = 300.0, on_change=None) -> dict[str, dict]:
        """Poll until every job is final (or the timeout passes); return the last documents."""
        docs: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        pending = list(job_ids)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                try:
                    doc = self.status(job_id)
                except APIError as exc:
                    if exc.status != 404:  # a signed upload is not a job until GCS reports it
                        raise
                    continue
                if on_change and docs.get(job_id, {}).get("status") != doc["status"]:
                    on_change(doc)
                docs[job_id] = doc
                if doc["status"] in FINAL:
                    pending.remove(job_id)
            if pending:
                time.sleep(0.2)
        return docs


def _range_end(resp: requests.Response) -> int:
    """Last byte GCS holds, from `Range: bytes=0-N` of a 308 (none yet: -1)."""
    value = resp.headers.get("Range", "")
    return int(value.rpartition("-")[2]) if value.startswith("bytes=") else -1


def _content_type(path: Path) -> str:
    ext = path.suffix.lower()
    return {".heic": "image/heic", ".heif": "image/heif"}.get(ext) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"


class APIError(RuntimeError):
    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        super().__init__(f"HTTP {status}: {problem.get('title', '')}: {problem.get('detail', '')}")


def _json_or_raise(resp: requests.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        body = {"title": resp.reason, "detail": resp.text[:200]}
    if resp.status_code >= 400:
        raise APIError(resp.status_code, body)
    return body


class Progress:
    """What `mediarelay submit` tells a person on stderr: one line rewritten in place on a
    terminal (bytes the server holds, rate), nothing when stderr is not a terminal or when quiet;
    a resume after a dropped connection is always said (unless quiet), on a line of its own."""

    def __init__(self, label: str, quiet: bool = False, stream=None):
        self.label, self.quiet = label, quiet
        self.stream = stream or sys.stderr
        self.live = not quiet and self.stream.isatty()
        self.started = time.monotonic()
        self.first: int | None = None  # bytes held when the clock started (a resumed upload's rate counts this run's bytes)

    def __call__(self, sent: int, total: int) -> None:
        first = self.first = sent if self.first is None else self.first
        if not self.live:
            return
        mib = 1024 * 1024
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (sent - first) / elapsed / mib
        pct = 100 * sent // max(total, 1)
        print(f"\r{self.label}: {sent / mib:.1f} of {total / mib:.1f} MiB ({pct}%), {rate:.1f} MiB/s ",
              end="", file=self.stream, flush=True)
        if sent >= total:
            print(file=self.stream, flush=True)

    def resumed(self, offset: int, total: int) -> None:
        if not self.quiet:
            newline = "\n" if self.live else ""  # off the progress line
            print(f"{newline}{self.label}: connection lost; resuming at byte {offset} of {total}", file=self.stream,
                  flush=True)


def print_progress(label: str, quiet: bool = False) -> Progress:
    return Progress(label, quiet)
