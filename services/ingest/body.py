"""Reading an upload's body: bounded in size.

nginx (services/common/front.py) buffers every request before gunicorn sees it, so a body is
read here at memory speed and a slow client never holds this thread; nginx refuses a body more
than 64 KiB over MAX_UPLOAD_BYTES itself. Read from the WSGI input directly (not
`request.get_data`, whose limited stream cuts a body at the limit and calls it complete): one
byte over MAX_UPLOAD_BYTES is a 413. The body is always read to its end, never abandoned:
closing gunicorn's side of nginx's kept-alive connection would turn the next request on it
into a 502.
"""
from __future__ import annotations

import unicodedata

from flask import request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from ..common.config import Settings
from ..common.errors import HTTPProblem

CHUNK = 256 * 1024


def too_large(limit: int, setting: str, what: str = "request body") -> HTTPProblem:
    return HTTPProblem(413, "Upload too large", f"{what} exceeds the limit of {limit} bytes ({setting})")


def read_body(settings: Settings) -> bytes:
    limit = settings.max_upload_bytes
    declared = request.content_length
    stream = request.environ["wsgi.input"]
    parts, got = [], 0
    while chunk := stream.read(CHUNK):
        got += len(chunk)
        if got <= limit:
            parts.append(chunk)
    if got > limit:
        raise too_large(limit, "MAX_UPLOAD_BYTES")
    if declared is not None and got < declared:
        raise HTTPProblem(400, "Incomplete body", f"the body ended after {got} of the {declared} bytes announced")
    return b"".join(parts)


def split_upload(settings: Settings, body: bytes) -> tuple[bytes, str | None]:
    """(file bytes, client's filename) from a multipart body (field `file`) or a raw body."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data":
        return body, request.headers.get("X-Filename")
    boundary = options.get("boundary", "")
    if not boundary:
        raise HTTPProblem(400, "Bad multipart body", "multipart/form-data without a boundary")
    decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=None)
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts, field_bytes, current, data, filename = 0, 0, None, None, None
    chunks: list[bytes] = []
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, (Field, File)):
                parts += 1
                if parts > settings.max_form_parts:
                    raise too_large(settings.max_form_parts, "MAX_FORM_PARTS", "the number of form parts")
                current = event
                if isinstance(event, File) and event.name == "file" and data is None:
                    filename = event.filename
            elif isinstance(event, Data):
                if isinstance(current, File) and current.name == "file" and data is None:
                    chunks.append(event.data)
                    if not event.more_data:
                        data = b"".join(chunks)
                elif isinstance(current, Field) or isinstance(current, File):
                    field_bytes += len(event.data)
                    if field_bytes > settings.max_form_memory_bytes:
                        raise too_large(settings.max_form_memory_bytes, "MAX_FORM_MEMORY_BYTES",
                                        "the form's other fields")
            elif isinstance(event, (Epilogue, NeedData)):
                break
    except ValueError:
        raise HTTPProblem(400, "Bad multipart body", "the multipart body is malformed") from None
    if data is None:
        raise HTTPProblem(400, "No file", "multipart upload has no field named 'file'")
    return data, filename


def safe_filename(name, max_chars: int, ascii_only: bool = False) -> str | None:
    """A display name only (it never becomes an object name): the last path segment, without
    control, format (RLO...) or markup characters, at most `max_chars` characters. ASCII only
    where it travels in an HTTP header (signed uploads' x-goog-meta-filename)."""
    if not isinstance(name, str):
        return None
    base = name[:4096].replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in unicodedata.normalize("NFC", base)
                   if (unicodedata.category(c)[0] not in "CZ" or c == " ") and (c.isascii() or not ascii_only))
    kept = "".join(c for c in kept if c not in "<>\"'&`").strip(" .")
    return kept[:max_chars] or None
