"""The client's resumable upload against a session that keeps GCS's rules (no cloud): chunks are
multiples of 256 KiB and must start where the session's persisted bytes end; a status query
(`Content-Range: bytes */TOTAL`) answers 308 with `Range: bytes=0-N` (no Range: nothing held)
or 200 once the object is complete, and changes nothing; a dropped connection may leave part of
the chunk persisted (GCS keeps what it received, in 256 KiB units)."""
from __future__ import annotations

import io
import os
import re

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from services.client import GCS_CHUNK_MULTIPLE, IngestClient, Progress

UNIT = GCS_CHUNK_MULTIPLE


def _response(status: int, headers: dict | None = None, body: bytes = b"") -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp.headers, resp._content = status, CaseInsensitiveDict(headers or {}), body
    return resp


class GcsSession:
    """One resumable session. `drops[n] = fraction`: the n-th chunk PUT (1-based) loses its
    connection after that fraction of its body arrived; `lost_answers`: chunk PUTs whose bytes
    are persisted but whose answer never reaches the client."""

    def __init__(self, total: int, drops: dict[int, float] | None = None, lost_answers: tuple[int, ...] = ()):
        self.total, self.drops, self.lost_answers = total, drops or {}, lost_answers
        self.data = bytearray()
        self.chunks: list[tuple[int, int]] = []  # (start, length) of every chunk PUT, in order
        self.queries = 0

    def put(self, url, data=None, headers=None, timeout=None):
        span = headers["Content-Range"]
        if span.startswith("bytes */"):
            assert data is None
            self.queries += 1
            if int(span.removeprefix("bytes */")) != self.total:
                return _response(400, body=b"total differs from the session's")
            return self._state()
        start, end, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", span).groups())
        self.chunks.append((start, len(data)))
        n = len(self.chunks)
        if total != self.total or start != len(self.data) or end - start + 1 != len(data):
            return _response(400, body=b"chunk is not at the persisted offset")
        if end + 1 < self.total and len(data) % UNIT:
            return _response(400, body=b"a chunk that is not the last must be a multiple of 256 KiB")
        if n in self.drops:
            arrived = int(len(data) * self.drops[n])
            self.data += data[:arrived - arrived % UNIT]
            raise requests.ConnectionError("connection reset by peer")
        self.data += data
        if n in self.lost_answers:
            raise requests.ConnectionError("connection reset by peer")
        return self._state()

    def _state(self) -> requests.Response:
        if len(self.data) == self.total:
            return _response(200, body=b"{}")
        return _response(308, {"Range": f"bytes=0-{len(self.data) - 1}"} if self.data else {})


class Heard:
    def __init__(self):
        self.sent: list[int] = []
        self.resumes: list[int] = []

    def __call__(self, sent, total):
        self.sent.append(sent)

    def resumed(self, offset, total):
        self.resumes.append(offset)


def _upload(tmp_path, session: GcsSession, chunk: int = 4 * UNIT) -> tuple[bytes, Heard]:
    path = tmp_path / "clip.mp4"
    content = os.urandom(session.total)
    path.write_bytes(content)
    client = IngestClient("http://127.0.0.1:9", chunk_bytes=chunk)
    client.session = session
    heard = Heard()
    client.upload_resumable("http://127.0.0.1:9/session", path, {"Content-Type": "video/mp4"}, heard)
    return content, heard


def test_a_connection_dropped_mid_chunk_resumes_where_the_session_says_and_the_object_is_whole(tmp_path):
    session = GcsSession(total=10 * UNIT + 1234, drops={2: 0.6})  # chunk 2 keeps 2 of its 4 units
    content, heard = _upload(tmp_path, session)
    assert bytes(session.data) == content
    assert session.queries == 1  # it asked where to go on, once
    assert heard.resumes == [6 * UNIT]  # from what the session holds: not the chunk's start, not zero
    assert [start for start, _ in session.chunks] == [0, 4 * UNIT, 6 * UNIT, 10 * UNIT]
    assert all(length % UNIT == 0 for _, length in session.chunks[:-1])
    assert heard.sent == sorted(heard.sent) and heard.sent[-1] == session.total


def test_a_lost_answer_to_the_last_chunk_sends_nothing_again(tmp_path):
    session = GcsSession(total=5 * UNIT, lost_answers=(2,))
    content, heard = _upload(tmp_path, session)
    assert bytes(session.data) == content and len(session.chunks) == 2 and session.queries == 1
    assert heard.sent[-1] == session.total


def test_a_drop_before_anything_is_persisted_starts_again_from_zero(tmp_path):
    session = GcsSession(total=3 * UNIT, drops={1: 0.1})
    content, heard = _upload(tmp_path, session)
    assert bytes(session.data) == content and heard.resumes == [0]


@pytest.mark.parametrize("chunk", [0, UNIT + 1, 1000])
def test_a_chunk_size_that_gcs_would_refuse_is_refused_at_once(chunk):
    with pytest.raises(ValueError, match="256 KiB"):
        IngestClient("http://127.0.0.1:9", chunk_bytes=chunk)


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_is_a_line_on_a_terminal_silent_elsewhere_and_a_resume_is_always_said():
    term, pipe, quiet = _Stream(True), _Stream(False), _Stream(True)
    for stream, flag in ((term, False), (pipe, False), (quiet, True)):
        p = Progress("clip.mp4", quiet=flag, stream=stream)
        p(8 * 1024 * 1024, 32 * 1024 * 1024)
        p.resumed(8 * 1024 * 1024, 32 * 1024 * 1024)
        p(32 * 1024 * 1024, 32 * 1024 * 1024)
    assert "clip.mp4: 8.0 of 32.0 MiB (25%)" in term.getvalue() and "32.0 of 32.0 MiB (100%)" in term.getvalue()
    assert pipe.getvalue() == "clip.mp4: connection lost; resuming at byte 8388608 of 33554432\n"
    assert quiet.getvalue() == ""
