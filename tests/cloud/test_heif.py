"""HEIC/HEIF from phones, through the whole chain: sniffed, oriented by the container's
irot/imir, analysed and rendered like JPEG; a burst is read as its primary image, noted."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from localcloud import samples
from services.render.image import render_image
from services.render.presets import load as load_presets

from .conftest import wait_for_status


def _thumb(http, doc) -> np.ndarray:
    [r] = [r for r in doc["renditions"] if r["preset"] == "thumb-256" and r["format"] == "jpeg"]
    data = http.get(r["url"], timeout=30).content
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)




@pytest.mark.parametrize("orientation", [6, 2, 7])  # rotated; mirrored; both
def test_a_rotated_heic_photo_completes_upright(http, ingest_url, orientation):
    upright = samples.photo("chelsea")  # 451 x 300
    data = samples.heic_bytes(upright, orientation)
    stored = Image.open(io.BytesIO(data))
    resp = http.post(f"{ingest_url}/v1/uploads", files={"file": ("IMG_0001.HEIC", data)}, timeout=30)
    assert resp.status_code == 202, resp.text
    doc = wait_for_status(http, ingest_url, resp.json()["job_id"], timeout=120)
    assert doc["status"] == "completed", doc.get("error")
    assert doc["source"]["content_type"] == "image/heic"
    a = doc["analysis"]
    assert a["format"] == "heif" and (a["width"], a["height"]) == (451, 300), (a, stored.size)
    got = _thumb(http, doc)
    want = render_image(samples.jpeg_bytes(upright), a, load_presets().image_presets, encoders={}, max_pixels=10**8,
                        background=(255, 255, 255))[0]
    want = np.asarray(Image.open(io.BytesIO(next(r.data for r in want if r.preset == "thumb-256"))).convert("L"),
                      np.float32)
    assert np.abs(got - want).mean() < 8, "a HEIC must render like the upright photo"
    assert np.abs(got - np.fliplr(want)).mean() > 10 and np.abs(got - np.rot90(want)).mean() > 10


def test_a_heic_burst_is_read_as_its_primary_image_and_noted(http, ingest_url):
    colours = [(220, 30, 30), (30, 200, 40), (30, 40, 220)]
    data = samples.heic_burst([Image.new("RGB", (640, 480), c) for c in colours], primary=1)
    resp = http.post(f"{ingest_url}/v1/uploads", data=data, headers={"Content-Type": "image/heic"}, timeout=30)
    doc = wait_for_status(http, ingest_url, resp.json()["job_id"], timeout=120)
    assert doc["status"] == "completed", doc.get("error")
    assert doc["analysis"]["images"] == {"count": 3, "analysed": "primary"}
    assert doc["analysis"]["animation"]["frames"] == 1  # not an animation
    [r] = [r for r in doc["renditions"] if r["preset"] == "thumb-128" and r["format"] == "jpeg"]
    pixel = Image.open(io.BytesIO(http.get(r["url"], timeout=30).content)).convert("RGB").getpixel((64, 64))
    assert np.abs(np.subtract(pixel, colours[1])).max() < 30, pixel
