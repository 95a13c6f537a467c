"""Bounded media work (issue 10): pre-checks from the bytes, at the door and in the stages."""
from __future__ import annotations

import io
import os
import signal
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from services.common.config import Settings
from services.common.errors import CorruptMedia, LimitExceeded, TransientError
from services.media import precheck, sandbox
from services.media.admission import Admission
from services.pipeline import media_work
from tests.support import bombs


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




# --- the bounded child, in-process -----------------------------------------------------------

def _limits(memory=256 * 2**20, cpu=2, seconds=60.0) -> sandbox.ChildLimits:
    # A deadline far above the CPU limit: on a loaded machine a CPU-bound child gets a share of
    # a core, and the memory and CPU cases must be stopped by their own limit, not the clock.
    return sandbox.ChildLimits(memory, cpu, time.monotonic() + seconds, f"the test's deadline of {seconds:g} s")


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
    with pytest.raises(LimitExceeded) as err:  # a wall deadline far off: on a busy machine CPU time comes slowly
        sandbox.run(fn, b"", limits=_limits(cpu=1, seconds=120))
    assert setting in err.value.reason


def test_a_child_past_its_deadline_is_killed_and_the_reason_says_which_deadline():
    with pytest.raises(LimitExceeded) as err:
        sandbox.run(_sleep, b"", limits=_limits(cpu=60, seconds=1.0))
    assert "the test's deadline of 1 s" in err.value.reason and err.value.code == "deadline"


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

    def get(self, job_id):  # what the child's watch reads: no job here, so nothing cancels it
        return None


def test_a_crash_is_retried_then_corrupt_media_once_it_reproduces():
    jobs = _Crashes()
    with pytest.raises(sandbox.ChildCrashed) as first:
        media_work.run_for_job(jobs, "job", "render", _segfault, crash_attempts=2, limits=_limits())
    assert first.value.error_class == "transient" and "SIGSEGV" in first.value.reason
    with pytest.raises(CorruptMedia) as second:
        media_work.run_for_job(jobs, "job", "render", _segfault, crash_attempts=2, limits=_limits())
    assert "SIGSEGV" in second.value.reason and "MEDIA_CRASH_ATTEMPTS=2" in second.value.reason


def test_a_cancelled_jobs_child_is_killed_within_seconds_not_at_its_deadline():
    import threading

    from services.common.errors import Cancelled
    from services.ops import jobs as job_ops
    from tests.support.fakes import SOURCE, memory_runtime

    rt = memory_runtime()
    rt.jobs.create("job-cancel", {"kind": "video", "source": SOURCE})
    started: list[int] = []
    threading.Timer(1.0, job_ops.cancel, args=(rt, "job-cancel", "wrong file")).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled) as err:  # the child would sleep 60 s; its deadline is 20 s away
        media_work.run_for_job(rt.jobs, "job-cancel", "render", _sleep, crash_attempts=2, limits=_limits(cpu=60, seconds=20),
                               on_start=lambda r: started.append(r.pid))
    assert time.monotonic() - t0 < 1.0 + 5.0
    assert "wrong file" in err.value.reason
    with pytest.raises(ProcessLookupError):  # the child is gone (killed and reaped)
        os.kill(started[0], 0)


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


# --- through the running stack ----------------------------------------------------------------

CHAIN_INPUTS = {
    "gif-10000-frames-4000x4000": lambda: bombs.many_frame_gif(10_000, (4000, 4000)),
    "png-100mp-alpha": lambda: bombs.big_png(10000, 10000, alpha=True, seed=3),
    "png-100mp-16bit": lambda: bombs.big_png(10000, 10000, depth=16, seed=4),
    "webp-1000-frames-10000x9999": lambda: bombs.big_canvas_webp(1000, (10000, 9999)),
}
FINAL = ("completed", "failed")


@pytest.fixture(scope="module")
def chain_jobs(stack, http, ingest_url):
    """The inputs uploaded at once (plus a scan bomb through a signed URL, past the door), waited
    for while both media stages' /healthz is polled; returns (jobs by name, health answers)."""
    ids = {}
    for name, make in CHAIN_INPUTS.items():
        resp = http.post(f"{ingest_url}/v1/uploads", data=make(), headers={"Idempotency-Key": f"{name}-{uuid.uuid4()}"},
                         timeout=60)
        assert resp.status_code == 202, resp.text
        ids[name] = resp.json()["job_id"]
    bomb = bombs.scan_bomb(3000)
    grant = http.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": len(bomb)}, timeout=10)
    g = grant.json()
    assert http.put(g["upload_url"], data=bomb, headers=g["headers"], timeout=60).ok
    ids["jpeg-3000-scans-signed-url"] = g["job_id"]
    health, docs = [], {}
    deadline = time.monotonic() + 280
    while len(docs) < len(ids) and time.monotonic() < deadline:
        for service in ("analyze", "render"):
            health.append(http.get(f"{stack.url(service)}/healthz", timeout=5).status_code)
        for name, job_id in ids.items():
            resp = http.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10)
            if resp.status_code == 200 and resp.json()["status"] in FINAL:
                docs[name] = resp.json()
        time.sleep(0.5)
    return docs, health, ids








def _seed(stack, raw: bytes, content_type: str) -> dict:
    """An original and its job document, nothing published: only what the test pushes moves it."""
    from services.pipeline.blobs import BlobStore
    from services.pipeline.jobstore import JobStore

    job_id = f"seed-{uuid.uuid4().hex[:12]}"
    obj = BlobStore(stack.project).put_if_absent("mediarelay-originals", f"originals/{job_id}", raw, content_type)
    source = {"uri": obj.uri, "bucket": obj.bucket, "name": obj.name, "generation": obj.generation,
              "content_type": content_type, "size": len(raw)}
    JobStore(stack.project).create(job_id, {"kind": "image", "source": source})
    return {"job_id": job_id, "kind": "image", "source": source, "submitted_at": "2026-01-01T00:00:00Z"}


def _job(stack, job_id: str) -> dict:
    from services.pipeline.jobstore import JobStore

    return JobStore(stack.project).get(job_id)






def test_render_has_a_time_budget_checked_between_renditions():
    from services.render.image import render_image
    from services.render.presets import load

    cat = load()
    raw = _encode(Image.new("RGB", (1600, 1200), (90, 120, 150)), "JPEG")
    over = sandbox.ChildLimits(2**30, 60, time.monotonic() - 1, "render's deadline of 165 s (test)").budget("rendering")
    with pytest.raises(LimitExceeded) as err:
        render_image(raw, {"width": 1600, "height": 1200}, cat.image_presets, encoders=cat.encoders, max_pixels=10**8,
                     background=(255, 255, 255), budget=over)
    assert "rendering ran past render's deadline of 165 s (test)" in err.value.reason


@pytest.mark.parametrize("lossless", [False, True])
def test_an_animated_webps_first_frame_read_alone_matches_the_animation_decoders(lossless):
    from services.media.firstframe import first_webp_frame

    frames = [Image.new("RGBA", (90, 60), (0, 0, 0, 0)) for _ in range(3)]
    for i, f in enumerate(frames):
        f.paste((200, 40 * i, 10, 255), (10 + 20 * i, 5, 40 + 20 * i, 50))
    raw = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=80, lossless=lossless, quality=90)
    with Image.open(io.BytesIO(raw)) as im:
        want = np.asarray(im.convert("RGBA"), np.int16)
    got = np.asarray(first_webp_frame(raw, (90, 60)), np.int16)
    assert got.shape == want.shape and np.abs(got - want).max() <= 2


