"""Bounded media work (issue 10): pre-checks from the bytes, at the door and in the stages."""
from __future__ import annotations

import io
import os
import signal
import time

import pytest
from PIL import Image

from services.common import precheck, sandbox
from services.common.admission import Admission
from services.common.config import Settings
from services.common.errors import CorruptMedia, LimitExceeded, TransientError
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


# --- the bounded child, in-process -----------------------------------------------------------

def _limits(memory=256 * 2**20, cpu=2, seconds=3.0) -> sandbox.Limits:
    return sandbox.Limits(memory, cpu, time.monotonic() + seconds, "the test's deadline of 3 s")


def _allocate(raw: bytes) -> int:
    return len(bytearray(2**31))


def _spin(raw: bytes) -> None:
    while True:
        pass


def _sleep(raw: bytes) -> None:
    time.sleep(60)


def _segfault(raw: bytes) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _corrupt(raw: bytes) -> None:
    raise CorruptMedia("no pixels after the header", code="corrupt-image")


def _bug(raw: bytes) -> None:
    raise KeyError("width")


def test_the_child_returns_what_the_work_returns():
    assert sandbox.run(bytes.upper, b"abc", limits=_limits()) == b"ABC"


@pytest.mark.parametrize("fn, setting", [(_allocate, "MEDIA_MEMORY_LIMIT_BYTES"), (_spin, "MEDIA_CPU_LIMIT_SECONDS")])
def test_a_child_over_its_memory_or_cpu_is_stopped_naming_the_setting(fn, setting):
    with pytest.raises(LimitExceeded) as err:
        sandbox.run(fn, b"", limits=_limits())
    assert setting in err.value.reason


def test_a_child_past_its_deadline_is_killed_and_the_reason_says_which_deadline():
    with pytest.raises(LimitExceeded) as err:
        sandbox.run(_sleep, b"", limits=_limits(cpu=60, seconds=1.0))
    assert "the test's deadline of 3 s" in err.value.reason and err.value.code == "deadline"


def test_error_classes_cross_over_and_a_bug_stays_a_bug():
    with pytest.raises(CorruptMedia, match="no pixels"):
        sandbox.run(_corrupt, b"", limits=_limits())
    with pytest.raises(sandbox.ChildFailed, match="KeyError"):
        sandbox.run(_bug, b"", limits=_limits())


class _Crashes:
    def __init__(self):
        self.count = 0

    def record_crash(self, job_id, stage, reason):
        self.count += 1
        return self.count


def test_a_crash_is_retried_then_corrupt_media_once_it_reproduces():
    jobs = _Crashes()
    with pytest.raises(sandbox.ChildCrashed) as first:
        sandbox.run_for_job(jobs, "job", "render", 2, _segfault, b"", limits=_limits())
    assert first.value.error_class == "transient" and "SIGSEGV" in first.value.reason
    with pytest.raises(CorruptMedia) as second:
        sandbox.run_for_job(jobs, "job", "render", 2, _segfault, b"", limits=_limits())
    assert "SIGSEGV" in second.value.reason and "MEDIA_CRASH_ATTEMPTS=2" in second.value.reason


# --- admission ---------------------------------------------------------------------------------

def test_admission_refuses_what_does_not_fit_now_and_for_good_what_never_fits():
    used = [100]
    adm = Admission(1000, used=lambda: used[0])
    with adm.admit(600, "job a"):
        with pytest.raises(TransientError, match="retried later"):  # 100 used + 600 reserved: 300 left
            with adm.admit(400, "job b"):
                pass
    with adm.admit(400, "job b"):  # a's reservation is gone
        pass
    with pytest.raises(LimitExceeded, match="INSTANCE_MEMORY_BYTES"):
        with adm.admit(2000, "job c"):
            pass
