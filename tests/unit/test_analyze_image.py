"""Image analysis on real decoded files made from the photos scikit-image ships."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from localcloud import samples
from services.analyze.image import analyze_image
from services.analyze.phash import hamming
from services.common.config import REPO_ROOT
from services.common.errors import LimitExceeded
from services.pipeline.schemas import validate

MAX_PIXELS = 100_000_000


def analyze(raw: bytes) -> dict:
    return analyze_image(raw, MAX_PIXELS)


def resized_jpeg(name: str, scale: float, quality: int = 90, blur: float = 0.0) -> bytes:
    im = samples.photo(name)
    if blur:
        im = Image.fromarray(cv2.GaussianBlur(np.asarray(im), (0, 0), blur))
    if scale != 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return samples.jpeg_bytes(im, quality=quality)


@pytest.fixture(scope="module")
def astronaut() -> dict:
    return analyze(samples.jpeg_bytes(samples.photo("astronaut")))


def test_rotated_photo_reports_upright_dimensions_and_boxes():
    a = analyze(samples.rotated_jpeg())  # stored 300x451 sideways, EXIF orientation 6
    assert (a["width"], a["height"]) == (451, 300)
    assert a["orientation"] == a["exif"]["orientation"] == 6
    box = a["attention"]
    assert box["x"] + box["width"] <= 451 and box["y"] + box["height"] <= 300


def test_face_found_on_astronaut_and_in_upright_pixels_after_rotation(astronaut):
    [face] = astronaut["faces"]
    # Eileen Collins' face sits in the upper middle of the 512x512 photo.
    assert 150 < face["x"] + face["width"] / 2 < 300 and 50 < face["y"] + face["height"] / 2 < 200
    assert astronaut["attention"]["source"] == "faces"
    att = astronaut["attention"]
    assert att["x"] <= face["x"] and att["x"] + att["width"] >= face["x"] + face["width"]
    # Same photo stored sideways with EXIF orientation 8: the face must come back where it is upright.
    sideways = samples.jpeg_bytes(samples.photo("astronaut").transpose(Image.Transpose.ROTATE_270), orientation=8)
    [turned] = analyze(sideways)["faces"]
    assert abs(turned["x"] - face["x"]) < 25 and abs(turned["y"] - face["y"]) < 25


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_face_on_photos_without_a_human_face(name):
    a = analyze(samples.jpeg_bytes(samples.photo(name)))
    assert a["faces"] == []
    assert a["attention"]["source"] == "saliency"


def test_saliency_box_lands_on_the_subject():
    # A bright textured patch on a flat grey field: the crop must go there, not to the centre.
    field = np.full((400, 800, 3), 120, np.uint8)
    field[220:340, 560:740] = np.asarray(samples.photo("coffee").resize((180, 120)))
    a = analyze(samples.jpeg_bytes(Image.fromarray(field)))
    box = a["attention"]
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    assert 540 < cx < 760 and 200 < cy < 360, box


def test_palette_is_deterministic_and_well_formed():
    raw = samples.jpeg_bytes(samples.photo("coffee"))
    first, second = analyze(raw)["palette"], analyze(raw)["palette"]
    assert first == second
    assert 5 <= len(first) <= 8
    assert abs(sum(c["weight"] for c in first) - 1) < 0.01
    assert [c["weight"] for c in first] == sorted((c["weight"] for c in first), reverse=True)
    for c in first:
        assert c["hex"] == "#{:02x}{:02x}{:02x}".format(*c["rgb"])


def test_palette_of_a_two_colour_image_finds_both_in_proportion():
    im = np.zeros((100, 200, 3), np.uint8)
    im[:, :150] = (200, 30, 30)
    im[:, 150:] = (20, 40, 220)
    palette = analyze(samples.png_bytes(Image.fromarray(im)))["palette"]
    assert [c["rgb"] for c in palette] == [[200, 30, 30], [20, 40, 220]]
    assert palette[0]["weight"] == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_blurred_copy_ranks_below_original_whatever_the_sizes(name):
    originals = {s: analyze(resized_jpeg(name, s))["sharpness"] for s in (0.5, 1.0, 3.0)}
    blurred = {s: analyze(resized_jpeg(name, s, blur=2.5))["sharpness"] for s in (0.5, 1.0, 3.0)}
    for so, o in originals.items():
        for sb, b in blurred.items():
            assert b < o, (f"blurred at {sb}x scored {b}", f"original at {so}x scored {o}")


def test_phash_close_for_copies_far_for_different_photos():
    h = {name: analyze(resized_jpeg(name, 1.0))["phash"] for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")}
    copies = [analyze(resized_jpeg("astronaut", 0.4, quality=60))["phash"], analyze(resized_jpeg("astronaut", 2.5))["phash"],
              analyze(samples.png_bytes(samples.photo("astronaut")))["phash"]]
    for c in copies:
        assert hamming(c, h["astronaut"]) <= 6
    names = list(h)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert hamming(h[a], h[b]) >= 20, (a, b)


def test_exif_subset_never_publishes_coordinates():
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R5"
    exif[0x0112] = 1
    exif.get_ifd(0x8769)[0x9003] = "2024:05:17 14:03:22"
    exif.get_ifd(0x8769)[0x9011] = "+02:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    buf = io.BytesIO()
    samples.photo("chelsea").save(buf, "JPEG", exif=exif.tobytes())
    a = analyze(buf.getvalue())
    assert a["exif"] == {"orientation": 1, "captured_at": "2024-05-17T14:03:22+02:00", "make": "Canon", "model": "EOS R5",
                         "has_location": True}
    text = str(a)
    assert "48.0" not in text and "51.0" not in text and "17.0, 40.0" not in text


def test_colour_mode_icc_and_animation():
    frames = [samples.photo(n).resize((120, 80)) for n in ("coffee", "chelsea", "rocket")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=[100, 150, 200], loop=0)
    a = analyze(buf.getvalue())
    assert a["format"] == "gif" and a["animation"] == {"frames": 3, "duration_ms": 450}
    assert a["color"]["mode"] == "P"
    still = analyze(samples.jpeg_bytes(samples.photo("coffee")))
    assert still["animation"] == {"frames": 1, "duration_ms": 0}
    assert still["color"] == {"mode": "RGB", "has_icc": False}
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    samples.photo("coffee").save(buf, "JPEG", icc_profile=srgb)
    assert analyze(buf.getvalue())["color"]["has_icc"] is True


def test_every_analysis_fits_the_published_schema(astronaut):
    for analysis in (astronaut, analyze(samples.alpha_png()), analyze(samples.rotated_jpeg())):
        source = {"uri": "gs://b/o", "bucket": "bkt", "name": "o", "generation": "1", "content_type": "image/jpeg", "size": 1}
        msg = {"job_id": "job-00000001", "kind": "image", "analysis": analysis, "source": source}
        validate(REPO_ROOT / "schemas", "media-analyzed.v2", msg)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF header claims another size."""
    raw = bytearray(samples.jpeg_bytes(samples.photo("coffee").resize((64, 48))))
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


@pytest.mark.parametrize(
    "raw, limit, words",
    [
        (_png_header_only(60_000, 60_000), MAX_PIXELS, f"over MAX_IMAGE_PIXELS={MAX_PIXELS}"),  # one limit, named once
        (_jpeg_claiming(8000, 6000), 24_000_000, "MAX_IMAGE_PIXELS=24000000"),  # ours, from the header
    ],
)
def test_decompression_bomb_rejected_before_any_decoding(monkeypatch, raw, limit, words):
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size))
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size))
    with pytest.raises(LimitExceeded) as err:
        analyze_image(raw, limit)
    assert err.value.code == "too-many-pixels" and words in err.value.reason
    assert decoded == []  # nothing was ever decoded, so no pixel buffer was allocated
