"""Bounded media work (issue 10): pre-checks from the bytes, at the door and in the stages."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from services.common import precheck
from services.common.config import Settings
from services.ingest.jobs import make_job_id

from . import bombs


def _settings(**over) -> Settings:
    return Settings.from_env().__class__(**{**Settings.from_env().__dict__, **over})


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


FRAMES = [Image.new("RGB", (120, 90), (i * 40, 0, 0)) for i in range(5)]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_frames_canvas_and_duration_come_from_the_headers(fmt):
    raw = _encode(FRAMES[0], fmt, save_all=True, append_images=FRAMES[1:], duration=[100, 150, 200, 50, 100], loop=0)
    f = precheck.facts_of(raw)
    assert (f.width, f.height, f.frames, f.duration_ms) == (120, 90, 5, 600)


def test_the_bombs_declare_their_work_in_a_few_milliseconds():
    assert precheck.facts_of(bombs.scan_bomb(2000)).scans == 2000
    g = precheck.facts_of(bombs.many_frame_gif(10_000, (4000, 4000)))
    assert (g.frames, g.width, g.height) == (10_000, 4000, 4000)
    w = precheck.facts_of(bombs.big_canvas_webp(1000, (10000, 9999)))
    assert (w.frames, w.pixels, w.bytes_per_pixel) == (1000, 99_990_000, 4)
    p = precheck.facts_of(bombs.big_png(2000, 1000, depth=16))
    assert (p.pixels, p.bytes_per_pixel) == (2_000_000, 6)
    assert precheck.facts_of(bombs.big_png(100, 100, alpha=True)).bytes_per_pixel == 4


@pytest.mark.parametrize(
    "raw, setting",
    [(bombs.header_bomb_png(40000, 40000), "MAX_IMAGE_PIXELS"),
     (bombs.scan_bomb(500), "JPEG_MAX_SCANS"),
     (bombs.big_png(4000, 3000, depth=16), "MEDIA_MEMORY_LIMIT_BYTES")],
)
def test_over_a_limit_is_refused_naming_the_setting(raw, setting):
    s = _settings(media_memory_limit_bytes=64 * 2**20)
    with pytest.raises(precheck.OverLimit) as err:
        precheck.check(raw, "image", s)
    assert err.value.setting == setting and setting in err.value.reason
    assert err.value.error_class == "limit-exceeded"


def test_unreadable_headers_are_left_to_the_decoder():
    assert precheck.check(b"\xff\xd8\xff\xe0 not really", "image", _settings()).format == ""
    assert precheck.check(b"\x89PNG\r\n\x1a\n\x00", "image", _settings()).format == ""


@pytest.mark.parametrize(
    "raw, setting",
    [(bombs.header_bomb_png(40000, 40000), "MAX_IMAGE_PIXELS"), (bombs.scan_bomb(500), "JPEG_MAX_SCANS")],
)
def test_the_door_answers_413_naming_the_setting_and_makes_no_job(http, ingest_url, raw, setting):
    key = f"door-{setting}-{time.time()}"
    resp = http.post(f"{ingest_url}/v1/uploads", data=raw, headers={"Idempotency-Key": key}, timeout=30)
    assert resp.status_code == 413, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["limit"] == setting and setting in body["detail"]
    assert http.get(f"{ingest_url}/v1/jobs/{make_job_id('key', key)}", timeout=10).status_code == 404
