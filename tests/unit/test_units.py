"""Pure logic: type sniffing, trace parsing, log format, schemas, status ordering."""
from __future__ import annotations

import io
import json
import logging

import pytest
from PIL import Image

from localcloud import samples
from services.common import logs
from services.common.config import Settings
from services.common.errors import BadMessage
from services.media import mediatypes
from services.pipeline.jobstate import forward
from services.pipeline.schemas import validate


def _encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, content_type",
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"), ("WEBP", "image/webp"),
     ("TIFF", "image/tiff"), ("BMP", "image/bmp"), ("AVIF", "image/avif")],
)
def test_sniff_recognises_images_pillow_writes(fmt, content_type):
    assert mediatypes.sniff(_encoded(fmt)[:64]).content_type == content_type


def test_sniff_recognises_an_mp4_video(tmp_path):
    head = samples.video_mp4(tmp_path / "v.mp4", seconds=0.5)[:64]
    assert mediatypes.sniff(head).content_type == "video/mp4"


@pytest.mark.parametrize(
    "head, content_type",
    [
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\0" * 40, "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\0" * 40, "video/webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + b"\0" * 40, "video/x-matroska"),
        (b"RIFF\x00\x10\x00\x00AVI LIST" + b"\0" * 40, "video/x-msvideo"),
    ],
)
def test_sniff_recognises_video_containers(head, content_type):
    assert mediatypes.sniff(head).content_type == content_type


CR3_RAW = b"\x00\x00\x00\x18ftypcrx " + b"\0" * 20  # ISO-BMFF, but not a type we take


@pytest.mark.parametrize("head", [b"%PDF-1.7", b"PK\x03\x04zipfile", b"<svg xmlns=", CR3_RAW])
def test_sniff_rejects_what_is_not_on_the_allow_list(head):
    assert mediatypes.sniff(head + b"\0" * 64) is None


def test_traceparent_and_cloud_trace_context_are_parsed():
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert logs.parse_trace(f"00-{tid}-{sid}-01") == (tid, sid)
    assert logs.parse_trace(None, f"{tid.upper()}/123;o=1") == (tid, format(123, "016x"))
    assert logs.parse_trace("garbage", None) is None
    assert logs.parse_trace(f"00-{'0' * 32}-{sid}-01") is None  # all-zero trace id is invalid


def test_child_traceparent_keeps_the_trace_and_changes_the_span():
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    child = logs.parse_trace(logs.new_traceparent((tid, sid)))
    assert child[0] == tid and child[1] != sid


def test_log_lines_are_cloud_logging_json_with_trace():
    fmt = logs.CloudLoggingFormatter("proj", "analyze")
    logs.bind_trace(("a" * 32, "b" * 16))
    logs.bind_fields(job_id="j1")
    try:
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
        entry = json.loads(fmt.format(record))
    finally:
        logs.clear_context()
    assert entry["severity"] == "WARNING" and entry["message"] == "hello world"
    assert entry["logging.googleapis.com/trace"] == f"projects/proj/traces/{'a' * 32}"
    assert entry["logging.googleapis.com/spanId"] == "b" * 16
    assert entry["job_id"] == "j1" and entry["service"] == "analyze"


def test_schemas_accept_good_messages_and_name_the_first_problem():
    settings = Settings.from_env()
    good = {"job_id": "abcdefgh12", "kind": "image", "submitted_at": "2026-01-01T00:00:00Z",
            "source": {"uri": "gs://b/o", "bucket": "bkt", "name": "o", "generation": "1",
                       "content_type": "image/jpeg", "size": 10}}
    validate(settings.schemas_dir, "media-ingested.v1", good)
    bad = {**good, "source": {**good["source"], "generation": "not-a-number"}}
    with pytest.raises(BadMessage, match="source/generation"):
        validate(settings.schemas_dir, "media-ingested.v1", bad)
    with pytest.raises(BadMessage, match="unknown message schema"):
        validate(settings.schemas_dir, "media-nothing.v9", good)


def test_every_schema_file_is_valid_json_schema_2020_12():
    from jsonschema import Draft202012Validator

    files = sorted(Settings.from_env().schemas_dir.glob("*.v[0-9]*.json"))
    assert len(files) >= 5
    for path in files:
        doc = json.loads(path.read_text())
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        Draft202012Validator.check_schema(doc)


def test_status_only_moves_forward_and_never_leaves_a_final_state():
    assert forward("received", "analyzing") and forward("analyzing", "notifying")
    assert not forward("rendering", "analyzing")
    assert not forward("completed", "failed") and not forward("failed", "completed")
    assert forward("rendering", "failed") and forward("received", "failed")
