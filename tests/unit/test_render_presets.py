"""Presets as validated data, start-up format checks, and the stage's output: names, types, schema."""
from __future__ import annotations

import dataclasses
import io
import json
from types import SimpleNamespace

import pytest
from PIL import Image

from localcloud import samples
from services.common.config import REPO_ROOT, Settings, parse_rgb
from services.pipeline.blobs import StoredObject
from services.pipeline.schemas import validate
from services.pipeline.topology import load_topology
from services.render import formats
from services.render.app import load_catalogue, make_handler
from services.render.formats import CACHE_CONTROL, FormatUnavailable, check_writable
from services.render.image import Rendition
from services.render.presets import DEFAULT_FILE, PresetsError, load, parse
from services.render.store import object_name
from services.render.work import RenderOptions
from tests.support.fakes import MemoryJobStore
from tests.support.render_support import asymmetric, exif_jpeg

SCHEMAS = REPO_ROOT / "schemas"


def test_default_presets_load_and_every_format_is_writable_here():
    cat = load()
    assert [p.name for p in cat.image_presets] == ["long-3840", "long-2048", "long-1536", "long-750", "thumb-256", "thumb-128"]
    assert [p.box[0] for p in cat.image_presets] == [3840, 2048, 1536, 750, 256, 128]
    assert {p.fit for p in cat.image_presets[4:]} == {"smart"}
    assert cat.formats() == {"jpeg", "webp", "avif"}
    check_writable(cat.formats())  # Pillow 13 here: AVIF and WebP built in


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d["image_presets"][0].update(fit="stretch"), "image_presets/0/fit"),
        (lambda d: d["image_presets"][1]["formats"].update(gif=80), "image_presets/1/formats"),
        (lambda d: d["image_presets"][2]["formats"].update(jpeg=101), "image_presets/2/formats/jpeg"),
        (lambda d: d["image_presets"][3].pop("box"), "'box' is a required property"),
        (lambda d: d["encoders"]["webp"].update(method=9), "encoders/webp/method"),
        (lambda d: d["image_presets"][5].update(name="thumb-256"), "unique"),
    ],
)
def test_a_bad_presets_file_fails_with_a_message_naming_the_problem(mutate, words):
    doc = json.loads(DEFAULT_FILE.read_text())
    mutate(doc)
    with pytest.raises(PresetsError, match=words.replace("(", r"\(")):
        parse(doc, "presets.json")


def test_start_up_fails_on_a_bad_presets_file(tmp_path, monkeypatch):
    bad = tmp_path / "presets.json"
    bad.write_text("{not json")
    monkeypatch.setenv("RENDER_PRESETS_FILE", str(bad))
    with pytest.raises(PresetsError, match="not JSON"):
        load_catalogue(Settings.from_env())
    monkeypatch.setenv("RENDER_PRESETS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(PresetsError, match="does not exist"):
        load_catalogue(Settings.from_env())


def test_a_format_pillow_cannot_write_is_reported_at_start_up(monkeypatch):
    monkeypatch.setitem(formats.FORMATS, "avif", dataclasses.replace(formats.FORMATS["avif"], pillow="NO-SUCH-CODEC"))
    with pytest.raises(FormatUnavailable, match="cannot write: avif"):
        check_writable({"jpeg", "avif"})


def test_flatten_background_setting_parses_and_rejects():
    assert parse_rgb("#ff00ff") == (255, 0, 255)
    assert parse_rgb("10, 20, 30") == (10, 20, 30)
    with pytest.raises(ValueError, match="FLATTEN_BACKGROUND='white'"):
        Settings.from_env({"FLATTEN_BACKGROUND": "white"})


def test_object_names_are_deterministic():
    r = Rendition("long-750", "avif", (750, 500), b"x")
    assert object_name("job12345678", r) == "renditions/job12345678/long-750.avif"
    still = Rendition("still", "jpeg", (640, 360), b"x", {"shot": 3, "time_ms": 100})
    assert object_name("job12345678", still) == "renditions/job12345678/shot-003.jpg"


class FakeBlobs:
    """put_if_absent as GCS does it: the first write creates, later ones find the object (412)."""

    def __init__(self, source: bytes):
        self.source, self.objects = source, {}

    def get_bytes(self, bucket, name, generation=None):
        return self.source

    def download_to(self, bucket, name, generation, fileobj):
        fileobj.write(self.source)
        fileobj.flush()

    def put_if_absent(self, bucket, name, data, content_type, cache_control=None):
        created = name not in self.objects
        if created:
            self.objects[name] = (data, content_type, cache_control, str(len(self.objects) + 1))
        data, ctype, _, gen = self.objects[name]
        return StoredObject(bucket, name, gen, len(data), ctype, created)


def _message(kind: str, content_type: str, analysis: dict) -> dict:
    src = {"uri": "gs://mediarelay-originals/o/x", "bucket": "mediarelay-originals", "name": "o/x", "generation": "1",
           "content_type": content_type, "size": 10}
    return {"job_id": "job12345678", "kind": kind, "source": src, "analysis": analysis}


def _run(raw: bytes, msg: dict):
    rt = SimpleNamespace(settings=Settings.from_env(), blobs=FakeBlobs(raw), topology=load_topology(), jobs=MemoryJobStore())
    handle = make_handler(RenderOptions.build(rt.settings, load()))
    return rt, handle(rt, {}, msg)


def test_image_stage_output_validates_as_media_rendered_v2_and_is_stored_with_headers():
    raw = exif_jpeg(asymmetric((1600, 1000)), orientation=1)
    msg = _message("image", "image/jpeg", {"format": "jpeg", "width": 1600, "height": 1000, "orientation": 1})
    rt, result = _run(raw, msg)
    [(topic, payload)] = result.publish
    assert topic == "media-rendered"
    validate(SCHEMAS, "media-rendered.v2", payload)
    assert result.job_fields == {"renditions": payload["renditions"], "skipped": payload["skipped"]}
    assert [(s["preset"], s["same_as"]) for s in payload["skipped"]] == [("long-3840", "long-2048")]  # 1600x1000 once
    for r in payload["renditions"]:
        name = r["uri"].removeprefix("gs://mediarelay-renditions/")
        data, ctype, cache, _ = rt.blobs.objects[name]
        assert ctype == r["content_type"] == formats.FORMATS[r["format"]].content_type and cache == CACHE_CONTROL
        assert Image.open(io.BytesIO(data)).size == (r["width"], r["height"]) and r["bytes"] == len(data)
    # A redelivery writes nothing new and reports the same objects.
    again = make_handler(RenderOptions.build(rt.settings, load()))(rt, {}, msg).publish[0][1]
    assert [r["uri"] for r in again["renditions"]] == [r["uri"] for r in payload["renditions"]]


def test_video_stage_output_carries_the_ladder_stills_and_storyboard_and_validates(tmp_path):
    """A short video (one segment, no fan-out) from an analysis of before segments (no start_s)."""
    from tests.support.fakes import memory_runtime

    raw = samples.video_mp4(tmp_path / "c.mp4")
    analysis = {"format": "mp4", "width": 640, "height": 360, "fps": 24.0, "frame_count": 72, "duration_s": 3.0, "codec": "mp4v"}
    rt = memory_runtime()
    msg = _message("video", "video/mp4", analysis)
    rt.blobs.put_if_absent(msg["source"]["bucket"], msg["source"]["name"], raw, "video/mp4")
    msg["source"]["generation"] = rt.blobs.objects[(msg["source"]["bucket"], msg["source"]["name"])][2]
    job = {"job_id": msg["job_id"], "source": msg["source"], "analysis": analysis}
    result = make_handler(RenderOptions.build(rt.settings, load()))(rt, job, msg)
    [(topic, payload)] = result.publish
    assert topic == "media-rendered" and result.fan_out is None
    validate(SCHEMAS, "media-rendered.v3", payload)
    board = payload["storyboard"]
    assert board["sprite"]["uri"].endswith("/storyboard.jpg") and board["vtt"]["uri"].endswith("/storyboard.vtt")
    assert rt.blobs.objects[("mediarelay-renditions", "renditions/job12345678/storyboard.vtt")][1].startswith("text/vtt")
    assert result.job_fields["storyboard"] == board
    assert any(r["uri"].endswith("/shot-000.jpg") for r in payload["renditions"])
    assert [r["preset"] for r in payload["renditions"]][:2] == ["poster", "poster"]
    video = payload["video"]
    assert [(r["name"], r["width"], r["height"]) for r in video["ladder"]] == [("360p", 640, 360), ("240p", 426, 240)]
    assert video["segments"] == 1 and video["audio"] is False and video["mp4"]["uri"].endswith("/video.mp4")
    # The public event schema accepts what notify copies onto the job (fields only added, never changed).
    event = {"id": "job12345678/completed", "type": "mediarelay.job.completed", "job_id": "job12345678",
             "status": "completed", "occurred_at": "2026-01-01T00:00:00Z", "analysis": analysis,
             "renditions": payload["renditions"], "storyboard": board, "video": video}
    validate(SCHEMAS, "media-events.v2", event)
    # v3, as published: the same outputs as links to our API, no bucket and no gs:// URI anywhere.
    from services.pipeline.events import build_event

    job = {**{k: event[k] for k in ("job_id", "analysis", "renditions", "storyboard", "video")}, "kind": "video",
           "source": msg["source"], "final_event": {"id": event["id"], "status": "completed", "claimed_at": event["occurred_at"]}}
    v3 = build_event(job, "https://api.example.test")
    validate(SCHEMAS, "media-events.v3", v3)
    text = json.dumps(v3)
    assert "gs://" not in text and msg["source"]["bucket"] not in text and "mediarelay-renditions" not in text, text
    assert v3["video"]["ladder"][0]["playlist"]["url"] == \
        "https://api.example.test/v1/jobs/job12345678/renditions/hls/360p/index.m3u8"
    assert v3["links"]["playback"] == "https://api.example.test/v1/jobs/job12345678/playback"
