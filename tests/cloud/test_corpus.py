"""The broken and odd corpus (tests/corpus.py) through real HTTP, ingest and the local cloud.

Every file is uploaded first, then all the events are awaited together (one pass), so the
whole corpus costs about as much as its slowest file. For each: the job is final within
FINAL_WITHIN seconds (or the upload is refused with a 4xx naming the limit), its error class
is the expected one, and its reason is written for a person.
"""
from __future__ import annotations

import collections
import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from services.render.presets import load as load_presets
from tests.support import corpus
from tests.support.corpus import check_reason

from .test_chain import upload

FINAL_WITHIN = 60.0  # seconds: a bound on "final", far above what any of these files needs
CASES = {c.name: c for c in corpus.build()}
@pytest.fixture(scope="module")
def outcomes(http, ingest_url, events) -> dict[str, dict]:
    """name -> {"upload": response, "event": final event or None, "seconds": upload to final event, "job": doc}."""
    started = time.monotonic()
    out, pending = {}, {}
    for c in CASES.values():
        sent = time.monotonic()
        resp = upload(http, ingest_url, c.data, c.name)
        out[c.name] = {"upload": resp, "event": None, "seconds": None, "job": None, "sent": sent}
        if resp.status_code == 202:
            pending[resp.json()["job_id"]] = c.name
    deadline = started + FINAL_WITHIN
    while pending and time.monotonic() < deadline:
        events.drain()
        for job_id in list(pending):
            found = events.for_job(job_id)
            if found:
                name = pending.pop(job_id)
                out[name].update(event=found[0][1], seconds=round(time.monotonic() - out[name]["sent"], 1))
        time.sleep(0.3)
    for o in out.values():
        if o["upload"].status_code == 202:
            o["job"] = http.get(f"{ingest_url}/v1/jobs/{o['upload'].json()['job_id']}", timeout=10).json()
    _report(out)
    return out


def _report(out: dict[str, dict]) -> None:
    """What each file came to (shown with -s; the note of issue 9 records it)."""
    counts = collections.Counter()
    for name, o in out.items():
        if o["upload"].status_code != 202:
            seen = f"refused {o['upload'].status_code}"
        elif o["event"] is None:
            seen = f"not final after {FINAL_WITHIN:.0f}s ({o['job']['status']})"
        else:
            seen = o["event"]["status"] if o["event"]["status"] == "completed" else o["event"]["error"]["error_class"]
        counts[seen.split(" (")[0]] += 1
        reason = (o["job"] or {}).get("error", {}).get("reason", "") if o["job"] else o["upload"].text[:120]
        print(f"corpus: {name:36s} {seen:28s} {o['seconds']}s {reason[:150]}")
    print("corpus counts:", dict(sorted(counts.items())))


@pytest.mark.parametrize("name", list(CASES))
def test_every_corpus_file_ends_as_expected(outcomes, name):
    case, o = CASES[name], outcomes[name]
    resp = o["upload"]
    if resp.status_code != 202:  # refused at the door: only a limit may do that, and it must say which
        assert case.outcome == "limit-exceeded" and resp.status_code in (413, 422), resp.text
        assert resp.headers["Content-Type"] == "application/problem+json"
        check_reason(resp.json()["detail"], case.words)
        return
    assert o["event"] is not None, f"{name}: not final within {FINAL_WITHIN}s: {o['job']['status']} {o['job'].get('stages')}"
    event, job = o["event"], o["job"]
    if case.outcome == "completed":
        assert event["status"] == "completed", event.get("error")
        return
    assert event["status"] == "failed" and job["status"] == "failed"
    assert event["error"]["error_class"] == case.outcome, event["error"]
    assert job["error"] == event["error"]
    check_reason(event["error"]["reason"], case.words)


def _completed(outcomes, name) -> dict:
    o = outcomes[name]
    if o["event"] is None or o["event"]["status"] != "completed":
        pytest.fail(f"{name} did not complete: {o['event']}")
    return o["job"]


def _download(rendition: dict) -> bytes:
    """A rendition through the URL the public job view gives a client (signed, short-lived)."""
    resp = requests.get(rendition["url"], timeout=30)
    resp.raise_for_status()
    return resp.content


def _pixels(rendition: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_download(rendition))).convert("RGB"), np.float32)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.orientation])
def test_renditions_are_turned_as_the_analysis_says(outcomes, name):
    case, job = CASES[name], _completed(outcomes, name)
    assert job["analysis"]["orientation"] == case.orientation
    upright = corpus.asymmetric()
    assert (job["analysis"]["width"], job["analysis"]["height"]) == upright.size
    full = [r for r in job["renditions"] if not r["preset"].startswith("thumb")]
    assert full
    for r in full:
        got = _pixels(r)
        assert got.shape[1::-1] == upright.size, (r["preset"], r["format"])
        want = np.asarray(upright, np.float32)
        assert np.abs(got - want).mean() < 12, (r["preset"], r["format"])
        assert got[:20, :30, 0].mean() > 180 and got[:20, :30, 1].mean() < 90  # the red block is top-left


def test_every_completed_image_has_a_full_frame_rendition_in_every_configured_format(outcomes):
    formats = {f for p in load_presets().image_presets for f in p.formats}
    for name, c in CASES.items():
        if c.outcome != "completed":
            continue
        job = _completed(outcomes, name)
        w, h = job["analysis"]["width"], job["analysis"]["height"]
        renditions = [r for r in job["renditions"] if not r.get("poster")]  # an animation's poster is its own thing
        full = {r["format"] for r in renditions if abs(r["width"] * h - r["height"] * w) <= max(w, h)}
        assert full >= formats, (name, full)
        sizes = [(r["preset"], r["format"], r["width"], r["height"]) for r in renditions]
        assert len({s[1:] for s in sizes}) == len(sizes), f"{name}: the same rendition twice: {sizes}"


def test_a_600x400_photo_gets_every_format_at_its_own_size_and_collapsed_presets(outcomes):
    job = _completed(outcomes, "jpeg-600x400.jpg")
    presets = load_presets().image_presets
    at_source = [r for r in job["renditions"] if (r["width"], r["height"]) == (600, 400)]
    assert sorted(r["format"] for r in at_source) == sorted({f for p in presets for f in p.formats})
    [kept] = {r["preset"] for r in at_source}
    bigger = [p.name for p in presets if not p.crops and p.name != kept]
    assert {s["preset"]: s.get("same_as") for s in job["skipped"]} == {n: kept for n in bigger}
    for r in at_source:
        im = Image.open(io.BytesIO(_download(r)))
        assert im.size == (600, 400) and im.format.lower() == r["format"]
    thumbs = {(r["preset"], r["width"], r["height"]) for r in job["renditions"] if r["preset"].startswith("thumb")}
    assert thumbs == {("thumb-256", 256, 256), ("thumb-128", 128, 128)}


def test_truncation_is_reported_by_the_analysis(outcomes):
    assert _completed(outcomes, "jpeg-partly-truncated.jpg")["analysis"]["truncated"] is True
    assert _completed(outcomes, "jpeg-600x400.jpg")["analysis"]["truncated"] is False


@pytest.mark.parametrize("name", ["webp-animated.webp", "avif-animated.avif"])
def test_animated_webp_and_avif_durations_come_from_their_frames(outcomes, name):
    job = _completed(outcomes, name)
    frames = CASES[name].checks["frames"]
    assert job["analysis"]["animation"] == {"frames": frames, "duration_ms": CASES[name].checks["duration_ms"]}
    animated = [r for r in job["renditions"] if r.get("animated")]
    assert animated and all(r["format"] == "webp" and r["frames"] == frames for r in animated)
    with Image.open(io.BytesIO(_download(animated[0]))) as im:
        assert im.n_frames == frames


def test_an_image_smaller_than_every_preset_still_gets_renditions(outcomes):
    job = _completed(outcomes, "png-tiny-90x60.png")
    sizes = {(r["preset"], r["width"], r["height"]) for r in job["renditions"]}
    assert {(w, h) for _, w, h in sizes} == {(90, 60), (60, 60)}  # full frame + one square thumbnail
    assert all(max(w, h) <= 90 for _, w, h in sizes)  # never upscaled
