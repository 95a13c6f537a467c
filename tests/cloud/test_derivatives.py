"""Derivative images against the running stack: a page's signed URL gives the size and format its
browser takes, a face stays whole in a square cut, an altered URL is refused, the second request
is served from storage without a media child, and deleting the job deletes its derivatives."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

from localcloud import samples
from services.client import IngestClient

from .conftest import wait_for_status


def face_photo() -> bytes:
    """The astronaut near the top of a 512x768 canvas: a centred square cuts the top of her face."""
    canvas = Image.new("RGB", (512, 768), (128, 128, 128))
    canvas.paste(samples.photo("astronaut"), (0, 0))
    return samples.jpeg_bytes(canvas)


@pytest.fixture(scope="module")
def job(http, ingest_url):
    resp = http.post(f"{ingest_url}/v1/uploads", files={"file": ("face.jpg", face_photo())}, timeout=30)
    assert resp.status_code == 202, resp.text
    doc = wait_for_status(http, ingest_url, resp.json()["job_id"], timeout=120)
    assert doc["status"] == "completed", doc.get("error")
    return doc


@pytest.fixture(scope="module")
def sign(stack, ingest_url):
    """The client library's signer (what `mediarelay sign-url` prints), its keys fetched once."""
    client = IngestClient(ingest_url, api_key=stack.api_key)
    keys = client.signing_keys()
    assert [k["current"] for k in keys["keys"]] == [True]
    return lambda options, job_id: client.image_url(job_id, options, keys)


def served_lines(stack, url: str) -> list[dict]:
    """ingest's `derivative served` log lines for this URL's path, oldest first."""
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    lines = (stack.state_dir / "logs" / "ingest.log").read_text(errors="replace").splitlines()
    found = []
    for line in lines:
        if '"derivative served"' in line:
            entry = json.loads(line)
            if entry.get("http_path") == "/" + path:
                found.append(entry)
    return found


@pytest.mark.parametrize("accept,fmt", [("image/avif,image/webp,image/*,*/*;q=0.8", "avif"),
                                        ("image/webp,image/*,*/*;q=0.8", "webp")])
def test_a_signed_url_gives_the_size_and_format_the_browser_takes(job, sign, accept, fmt):
    url = sign("w:160/dpr:2/format:auto", job["job_id"])
    resp = requests.get(url, headers={"Accept": accept}, timeout=60)  # no API key: the signature is the credential
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == f"image/{fmt}" and "Accept" in resp.headers["Vary"]
    assert "immutable" in resp.headers["Cache-Control"]
    im = Image.open(io.BytesIO(resp.content))
    assert im.format == {"avif": "AVIF", "webp": "WEBP"}[fmt] and im.size == (320, 480)  # 160 CSS px at dpr 2


def test_a_square_cut_with_gravity_auto_keeps_the_face_whole(job, sign):
    [face] = job["analysis"]["faces"]
    got = {}
    for gravity in ("auto", "centre"):
        resp = requests.get(sign(f"w:256/h:256/fit:cover/format:jpeg/gravity:{gravity}", job["job_id"]), timeout=60)
        assert resp.status_code == 200, resp.text
        got[gravity] = Image.open(io.BytesIO(resp.content)).convert("L")
        assert got[gravity].size == (256, 256)
    # The source is scaled by 1/2 (512 wide -> 256): the face's rows in the square, cut from the top for auto.
    top, bottom = face["y"] / 2, (face["y"] + face["height"]) / 2
    assert 0 <= top and bottom <= 256
    reference = Image.open(io.BytesIO(face_photo())).convert("L").resize((256, 384)).crop((0, 0, 256, 256))
    ref = np.asarray(reference, np.float32)
    assert np.abs(np.asarray(got["auto"], np.float32) - ref).mean() < 6, "auto must be the top square, where the face is"
    assert np.abs(np.asarray(got["centre"], np.float32) - ref).mean() > 10, "the centred square cuts the face"


def test_an_altered_or_unsigned_url_is_refused(job, sign):
    url = sign("w:100", job["job_id"])
    assert requests.get(url, timeout=30).status_code == 200
    assert requests.get(url.replace("/w:100/", "/w:1000/"), timeout=30).status_code == 403
    signature = url.split("/v1/img/")[1].split("/")[0]
    assert requests.get(url.replace(signature, signature[:-2] + "xx"), timeout=30).status_code == 403
    assert requests.get(url.replace("w:100", "w:9000", 1).replace(signature, "k.c.m"), timeout=30).status_code == 403
    too_big = requests.get(sign("w:9000", job["job_id"]), timeout=30)
    assert too_big.status_code == 400 and "DERIVATIVE_MAX_EDGE" in too_big.json()["detail"]


def test_the_second_request_spawns_no_media_child(stack, job, sign):
    url = sign("w:140/h:100/fit:cover/format:webp", job["job_id"])
    first = requests.get(url, timeout=60)
    second = requests.get(url, timeout=60)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    deadline = time.monotonic() + 5
    while len(lines := served_lines(stack, url)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    miss, hit = lines[-2:]
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")
    assert hit["media_children_started"] == miss["media_children_started"], "a hit started a media child"


def test_deleting_the_job_deletes_its_derivatives(http, ingest_url, sign):
    resp = http.post(f"{ingest_url}/v1/uploads", files={"file": ("cat.jpg", samples.jpeg_bytes(samples.photo("chelsea")))},
                     timeout=30)
    job_id = resp.json()["job_id"]
    assert wait_for_status(http, ingest_url, job_id, timeout=120)["status"] == "completed"
    url = sign("w:120/format:jpeg", job_id)
    assert requests.get(url, timeout=60).status_code == 200
    from google.cloud import storage

    bucket = storage.Client().bucket("mediarelay-renditions")
    assert list(bucket.list_blobs(prefix=f"renditions/{job_id}/derivatives/"))
    assert http.delete(f"{ingest_url}/v1/jobs/{job_id}", timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while list(bucket.list_blobs(prefix=f"renditions/{job_id}/derivatives/")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(bucket.list_blobs(prefix=f"renditions/{job_id}/derivatives/")), "derivatives outlived their job"
    assert requests.get(url, timeout=30).status_code == 404
