"""In-process (no stack): the decoder guard's mapping, the orientation reader, and the corpus through both stages' code."""
from __future__ import annotations

import copy
import datetime as dt
import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from services.analyze.image import analyze_image
from services.common.errors import CorruptMedia, LimitExceeded, MediarelayError, UnsupportedMedia
from services.media.decoding import clean, decoding
from services.media.mediatypes import sniff
from services.media.orientation import orientation, orientation_value, upright_array, upright_image
from services.ops.dlq import DeadLetter
from services.render.animated import is_animated, render_animated
from services.render.image import render_image
from services.render.presets import DEFAULT_FILE, PresetsError, load, parse
from tests.support import corpus
from tests.support.corpus import check_reason

CATALOGUE = load()
FAILING = [c for c in corpus.build() if c.outcome != "completed"]
RENDER_READS_PAGE_ONE = {"tiff-second-ifd-broken.tiff"}  # render never opens the broken second page


def _render(raw: bytes, size=(300, 200)):
    cat, analysis = CATALOGUE, {"width": size[0], "height": size[1]}
    kw = dict(encoders=cat.encoders, max_pixels=10**8, background=(255, 255, 255))
    if is_animated(raw, 10**8):
        return render_animated(raw, analysis, cat.image_presets, **kw, poster=cat.animated_poster, max_frames=300,
                               max_anim_pixels=25_000_000)
    return render_image(raw, analysis, cat.image_presets, **kw)


# Analyze reads an animation's frames from its headers and decodes only the first (a many-frame
# file costs a header walk); the frames after it are decoded by render, which finds these.
LATER_FRAMES = {"apng-sequence-broken.png", "apng-cut-in-later-frame.png", "gif-later-frame-bomb.gif"}


@pytest.mark.parametrize("case", FAILING, ids=lambda c: c.name)
def test_both_stages_classify_a_bad_file_the_same_way(case):
    if case.name in LATER_FRAMES:
        assert analyze_image(case.data, 10**8)["animation"]["frames"] > 1
    else:
        with pytest.raises(MediarelayError) as analyzed:
            analyze_image(case.data, 10**8)
        assert analyzed.value.error_class == case.outcome, analyzed.value.reason
        check_reason(analyzed.value.reason, case.words)
    if case.name in RENDER_READS_PAGE_ONE:
        assert _render(case.data)[0]
        return
    with pytest.raises(MediarelayError) as rendered:  # render, handed the same file, guards its decoders too
        _render(case.data)
    assert rendered.value.error_class == case.outcome, rendered.value.reason
    check_reason(rendered.value.reason, case.words)


def test_our_own_bugs_inside_the_guard_stay_internal():
    with pytest.raises(KeyError), decoding("the PNG image"):
        {}["missing"]
    with pytest.raises(TypeError), decoding():
        len(5)


def test_decoder_exceptions_map_to_error_classes_with_readable_reasons():
    with pytest.raises(CorruptMedia) as err, decoding("the PNG image"):
        Image.open(io.BytesIO(corpus.png_idat_damaged())).load()
    assert err.value.reason == "the PNG image cannot be decoded: its compressed pixel data is damaged"
    with pytest.raises(CorruptMedia) as err, decoding("the image"):
        cv2.resize(np.zeros((0, 0, 3), np.uint8), (4, 4))  # OpenCV's cv2.error, with its source path and code
    check_reason(err.value.reason, ())
    with pytest.raises(UnsupportedMedia), decoding("the BMP image"):
        Image.open(io.BytesIO(corpus.bmp_odd_bitfields()))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(LimitExceeded) as err, decoding("the GIF image"):
        Image.MAX_IMAGE_PIXELS = 5_000_000
        try:
            im = Image.open(io.BytesIO(corpus.gif_later_frame_bomb()))
            im.seek(1)
        finally:
            Image.MAX_IMAGE_PIXELS = before
    assert err.value.reason == "the GIF image is 400000000 pixels, over MAX_IMAGE_PIXELS=10000000"


@pytest.mark.parametrize("message, kept", [
    ("cannot identify image file <_io.BytesIO object at 0x7f85146d74c0>", "cannot identify image file"),
    ("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK", "Decompressed data too large for"),
    ("decoder error -2", "decoder"),
    ("[Errno 1094995529] Invalid data found when processing input", "Invalid data found when processing input"),
    ("broken PNG file (chunk b'\\x04\\x05')", "broken PNG file (chunk )"),
])
def test_clean_strips_what_is_not_for_people(message, kept):
    assert clean(message) == kept


@pytest.mark.parametrize("value, endian, want", [
    (6, "<", 6), ("6", "<", 6), ("6\x00", "<", 6), (b"6\x00", "<", 6), (b"\x08\x00", "<", 8), (b"\x00\x08", ">", 8),
    ((3,), "<", 3), (b"\x05", "<", 5), ("²", "<", 1), ("x", "<", 1), (9, "<", 1), (0, "<", 1), (None, "<", 1),
    (b"\x01\x02\x03", "<", 1), (2.0, "<", 2),
])
def test_orientation_value_accepts_any_stored_type(value, endian, want):
    assert orientation_value(value, endian) == want


@pytest.mark.parametrize("make, want", [
    (lambda: corpus.png_xmp_orientation(6), 6),
    (lambda: corpus.png_raw_profile_orientation(3), 3),
    (lambda: corpus.png_exif_after_pixels(8), 8),
    (lambda: corpus.jpeg_mistyped_orientation(6, ascii=True), 6),
    (lambda: corpus.jpeg_mistyped_orientation(8, ascii=False), 8),
])
def test_orientation_is_read_from_the_header_without_decoding(monkeypatch, make, want):
    raw = make()
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size))
    im = Image.open(io.BytesIO(raw))
    assert orientation(im) == want
    assert decoded == []


@pytest.mark.parametrize("o", range(1, 9))
def test_image_and_array_turns_match_pillow_exif_transpose(o):
    stored = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))
    exif = Image.Exif()
    exif[0x0112] = o
    stored.info["exif"] = exif.tobytes()
    want = np.asarray(ImageOps.exif_transpose(stored))
    assert np.array_equal(np.asarray(upright_image(stored, o)), want)
    assert np.array_equal(upright_array(np.asarray(stored), o), want)


def test_bigtiff_is_sniffed_as_tiff():
    assert sniff(corpus.bigtiff()[:64]).content_type == "image/tiff"
    assert sniff(b"MM\x00+\x00\x08\x00\x00" + b"\0" * 56).content_type == "image/tiff"


def test_jpeg_truncation_states():
    from services.media.imaging import jpeg_pixel_data

    assert jpeg_pixel_data(corpus.jpeg_600x400()) == "complete"
    assert jpeg_pixel_data(corpus.jpeg_600x400() + b"trailing bytes") == "complete"
    assert jpeg_pixel_data(corpus.jpeg_partly_truncated()) == "truncated"
    assert jpeg_pixel_data(corpus.jpeg_header_only()) == "none"
    assert jpeg_pixel_data(corpus.jpeg_600x400()[:100]) == "none"
    whole = corpus.jpeg_600x400()
    assert jpeg_pixel_data(whole[:2] + b"\xff\xff\xff\xd0" + whole[2:]) == "complete"  # fill bytes, a stray RST
    assert jpeg_pixel_data(b"\xff\xd8\xff\xd9" + b"\0" * 8) == "none"
    assert analyze_image(corpus.jpeg_partly_truncated(), 10**8)["truncated"] is True


@pytest.mark.parametrize("value, want", [("2", 2), ("²", 0), ("-1", 0), ("", 0), ("٣", 3), ("1e3", 0)])
def test_dead_letter_replay_count_survives_any_attribute_value(value, want):
    m = DeadLetter("s", "analyze", "t", "m1", "a1", dt.datetime.now(dt.UTC), {"replay_count": value}, b"{}")
    assert m.replay_count == want
    assert m.summary()["replay_count"] == want


def test_presets_must_give_every_format_a_full_frame_rendition():
    doc = json.loads(DEFAULT_FILE.read_text())
    bad = copy.deepcopy(doc)
    bad["image_presets"][-1]["formats"]["avif"] = 50  # AVIF only on a crop: a full frame in AVIF would be missing
    for p in bad["image_presets"]:
        if p["fit"] == "contain":
            p["formats"].pop("avif", None)
    with pytest.raises(PresetsError, match="avif"):
        parse(bad)
    parse(doc)


def _pyav_error(name: str, base: type) -> type:
    """A stand-in with PyAV's module and shape (PyAV itself arrives with the video work)."""
    return type(name, (base,), {"__module__": "av.error"})


def test_pyav_errors_map_like_any_decoder_error():
    invalid = _pyav_error("InvalidDataError", ValueError)
    with pytest.raises(CorruptMedia) as err, decoding("the MP4 video"):
        raise invalid("[Errno 1094995529] Invalid data found when processing input: '<none>'")
    assert err.value.reason == "the MP4 video is damaged and cannot be decoded (Invalid data found when processing input)"
    missing = _pyav_error("DecoderNotFoundError", OSError)
    with pytest.raises(UnsupportedMedia), decoding("the MKV video"):
        raise missing("[Errno 1128613112] Decoder not found")
    ended = _pyav_error("EOFError", EOFError)
    with pytest.raises(CorruptMedia, match="truncated"), decoding("the MP4 video"):
        raise ended("[Errno 541478725] End of file")
