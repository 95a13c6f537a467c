"""Still-image renditions on real files: orientation, metadata, colour, alpha, modes, skips, crops, quality."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity

from services.media.orientation import upright_array as orient
from services.render.colour import SRGB_PROFILE
from services.render.image import plan, render_image
from services.render.presets import Preset, load
from tests.support.render_support import (
    BODY_SERIAL,
    P3_PROFILE,
    SERIAL,
    STORED_FROM_UPRIGHT,
    asymmetric,
    contain,
    encode,
    exif_jpeg,
    flat,
    mean_rgb,
)

WHITE = (255, 255, 255)
ALL_FORMATS = {"jpeg": 85, "webp": 85, "avif": 60}


def render(raw: bytes, presets, size=None, background=WHITE):
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(raw)))
    analysis = {"width": size[0] if size else im.width, "height": size[1] if size else im.height}
    return render_image(raw, analysis, tuple(presets), encoders={}, max_pixels=10**8, background=background)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_renders_upright(orientation):
    upright = asymmetric()
    stored = upright.transpose(STORED_FROM_UPRIGHT[orientation]) if orientation > 1 else upright
    raw = exif_jpeg(stored, orientation)
    [r], skipped = render(raw, [contain("t", 240)])
    assert skipped == []
    assert r.size == (240, 160)
    got = pixels(r.data)
    want = np.asarray(upright.resize((240, 160), Image.Resampling.LANCZOS), np.float32)
    assert np.abs(got - want).mean() < 8
    assert got[:20, :30, 0].mean() > 200 and got[:20, :30, 1].mean() < 60  # the red block is top-left


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillow(orientation):
    arr = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    want = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(orient(arr, orientation), want)


def test_no_private_metadata_in_any_output_only_a_small_srgb_profile():
    raw = exif_jpeg(asymmetric((800, 600)), orientation=6)
    assert SERIAL.encode() in raw  # the source does carry a camera serial and GPS
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)
    outputs, _ = render(raw, [contain("a", 400, ALL_FORMATS), Preset("s", (128, 128), "smart", ALL_FORMATS)])
    assert {r.format for r in outputs} == {"jpeg", "webp", "avif"}
    for r in outputs:
        im = Image.open(io.BytesIO(r.data))
        assert not im.getexif(), (r.preset, r.format)
        assert not im.getexif().get_ifd(0x8825)
        assert "xmp" not in im.info and "comment" not in im.info, im.info.keys()
        assert im.info.get("icc_profile") == SRGB_PROFILE and len(SRGB_PROFILE) < 1024
        for secret in (SERIAL.encode(), b"CameraMaker", b"Model X", b"private comment", b"Exif\0\0"):
            assert secret not in r.data, (r.format, secret)
    assert BODY_SERIAL  # documented tag the source carried


@pytest.mark.parametrize("container", ["JPEG", "PNG"])
def test_non_srgb_profile_is_converted_to_srgb(container):
    p3 = (200, 100, 50)
    raw = encode(flat(p3), container, icc_profile=P3_PROFILE)
    outputs, _ = render(raw, [contain("a", 150, ALL_FORMATS)])
    for r in outputs:
        got = mean_rgb(r.data)
        # P3 (200,100,50) is (216,93,24) in sRGB: more saturated once converted.
        assert np.abs(got - (216, 93, 24)).max() < 7, (r.format, got)
        assert Image.open(io.BytesIO(r.data)).info.get("icc_profile") == SRGB_PROFILE


def test_srgb_tagged_input_is_left_as_is():
    raw = encode(flat((200, 100, 50)), "PNG", icc_profile=SRGB_PROFILE)
    [r], _ = render(raw, [contain("a", 150, {"webp": 95})])
    assert np.abs(mean_rgb(r.data) - (200, 100, 50)).max() < 4


def test_alpha_is_flattened_on_the_configured_background_for_jpeg_and_kept_for_webp_avif():
    im = asymmetric((400, 300)).convert("RGBA")
    alpha = Image.new("L", im.size, 0)
    alpha.paste(255, (100, 75, 300, 225))
    im.putalpha(alpha)
    outputs, _ = render(encode(im, "PNG"), [contain("a", 200, ALL_FORMATS)], background=(255, 0, 255))
    by_fmt = {r.format: Image.open(io.BytesIO(r.data)) for r in outputs}
    jpeg = np.asarray(by_fmt["jpeg"].convert("RGB"), np.float32)
    assert by_fmt["jpeg"].mode == "RGB"
    assert np.abs(jpeg[:20, :20].reshape(-1, 3).mean(axis=0) - (255, 0, 255)).max() < 6
    assert np.abs(jpeg[60:90, 80:120].reshape(-1, 3).mean(axis=0) - (255, 0, 255)).max() > 60  # the opaque middle
    for fmt in ("webp", "avif"):
        rgba = np.asarray(by_fmt[fmt].convert("RGBA"))
        assert rgba[:20, :20, 3].max() < 10 and rgba[60:90, 80:120, 3].min() > 245, fmt


def test_opaque_alpha_channel_is_dropped():
    raw = encode(asymmetric((300, 200)).convert("RGBA"), "PNG")
    [r], _ = render(raw, [contain("a", 100, {"webp": 80})])
    assert Image.open(io.BytesIO(r.data)).mode == "RGB"


def _cv_png16(rgb16: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", rgb16[:, :, ::-1].copy())
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("cmyk-jpeg", lambda: encode(flat((0, 255, 255, 0), mode="CMYK"), "JPEG", quality=95), (255, 0, 0)),
        ("grey-jpeg", lambda: encode(flat(90, mode="L"), "JPEG", quality=95), (90, 90, 90)),
        ("grey-png", lambda: encode(flat(200, mode="L"), "PNG"), (200, 200, 200)),
        ("grey16-png", lambda: encode(Image.fromarray(np.full((200, 300), 40000, np.uint16)), "PNG"), (156, 156, 156)),
        ("rgb16-png", lambda: _cv_png16(np.full((200, 300, 3), (65535, 32768, 0), np.uint16)), (255, 128, 0)),
        ("palette-png", lambda: encode(flat((30, 120, 220)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), (30, 120, 220)),
        ("palette-gif", lambda: encode(flat((30, 120, 220)).convert("P"), "GIF"), (30, 120, 220)),
        ("bilevel-tiff", lambda: encode(flat(1, mode="1"), "TIFF"), (255, 255, 255)),
        ("la-png", lambda: encode(flat((100, 255), mode="LA"), "PNG"), (100, 100, 100)),
        ("bmp", lambda: encode(flat((10, 200, 30)), "BMP"), (10, 200, 30)),
        ("webp", lambda: encode(flat((10, 200, 30)), "WEBP", lossless=True), (10, 200, 30)),
    ],
)
def test_source_modes_render_to_8bit_srgb(name, make, expected):
    outputs, _ = render(make(), [contain("a", 120, {"jpeg": 95, "webp": 95})])
    for r in outputs:
        im = Image.open(io.BytesIO(r.data))
        assert im.mode == "RGB", (name, r.format, im.mode)
        assert np.abs(mean_rgb(r.data) - expected).max() < 8, (name, r.format, mean_rgb(r.data))


def test_multipage_tiff_renders_its_first_page():
    pages = [flat((250, 20, 20)), flat((20, 250, 20)), flat((20, 20, 250))]
    raw = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert Image.open(io.BytesIO(raw)).n_frames == 3
    [r], _ = render(raw, [contain("a", 100, {"jpeg": 95})])
    assert np.abs(mean_rgb(r.data) - (250, 20, 20)).max() < 8


def test_presets_larger_than_the_source_give_its_own_size_once():
    steps, skipped = plan(1000, 600, load().image_presets)
    made = [(s.preset.name, s.size, sorted(s.preset.formats)) for s in steps]
    assert made == [("long-1536", (1000, 600), ["avif", "jpeg", "webp"]), ("long-750", (750, 450), ["avif", "jpeg", "webp"]),
                    ("thumb-256", (256, 256), ["jpeg", "webp"]), ("thumb-128", (128, 128), ["jpeg", "webp"])]
    assert [(s["preset"], s["same_as"]) for s in skipped] == [("long-3840", "long-1536"), ("long-2048", "long-1536")]
    assert all("never upscaled" in s["reason"] and "1000x600" in s["reason"] for s in skipped)
    # 200 px wide: too narrow for a 256 square, which becomes the largest square it holds, unscaled.
    steps, skipped = plan(200, 1000, load().image_presets)
    assert {s.preset.name: s.size for s in steps} == {"long-1536": (200, 1000), "long-750": (150, 750),
                                                      "thumb-256": (200, 200), "thumb-128": (128, 128)}
    assert all(s.scale <= 1 for s in steps)
    # A square source smaller than every box: one full frame (the thumbnail 256 crop is that same picture).
    steps, skipped = plan(200, 200, load().image_presets)
    assert [(s.preset.name, s.size) for s in steps] == [("long-750", (200, 200)), ("thumb-128", (128, 128))]
    assert {s["preset"]: s["same_as"] for s in skipped} == {
        "long-3840": "long-750", "long-2048": "long-750", "long-1536": "long-750", "thumb-256": "long-750"}
    # Exactly the source size is not an upscale, and nothing collapses into it from below.
    assert [(s.preset.name, s.size) for s in plan(750, 500, load().image_presets)[0]][0] == ("long-750", (750, 500))


def test_tiny_source_gets_a_full_frame_in_every_format_at_its_own_size():
    raw = exif_jpeg(asymmetric((90, 60)))
    outputs, skipped = render(raw, load().image_presets)
    assert sorted((r.preset, r.format, r.size) for r in outputs) == [
        ("long-750", "avif", (90, 60)), ("long-750", "jpeg", (90, 60)), ("long-750", "webp", (90, 60)),
        ("thumb-128", "jpeg", (60, 60)), ("thumb-128", "webp", (60, 60))]
    full = pixels(next(r.data for r in outputs if r.format == "jpeg" and r.size == (90, 60)))
    assert np.abs(full - np.asarray(asymmetric((90, 60)), np.float32)).mean() < 8  # the picture itself, not resampled
    assert {s["preset"] for s in skipped} == {"long-3840", "long-2048", "long-1536", "thumb-256"}


def test_renditions_have_the_planned_sizes_largest_first_and_keep_aspect():
    raw = exif_jpeg(asymmetric((2000, 1500)))
    outputs, skipped = render(raw, load().image_presets)
    sizes = {(r.preset, r.format): r.size for r in outputs}
    assert sizes[("long-1536", "avif")] == (1536, 1152)
    assert sizes[("long-750", "jpeg")] == (750, 562)
    assert sizes[("thumb-256", "webp")] == (256, 256)
    assert sizes[("long-2048", "avif")] == (2000, 1500)  # 3840 and 2048 are larger: one rendition at the source's size
    assert [(s["preset"], s["same_as"]) for s in skipped] == [("long-3840", "long-2048")]
    for r in outputs:
        assert Image.open(io.BytesIO(r.data)).size == r.size


def _detail_left(size=(600, 300)) -> Image.Image:
    """Flat grey, with a photo in the left quarter: the interesting part is on the left."""
    im = flat((128, 128, 128), size)
    im.paste(asymmetric((size[0] // 4, size[1])), (0, 0))
    return im


def test_smart_crop_follows_the_attention_box_when_analyze_sends_one():
    raw = encode(_detail_left(), "PNG")
    analysis = {"width": 600, "height": 300, "attention": {"x": 500, "y": 100, "width": 80, "height": 80, "source": "faces"}}
    [r], _ = render_image(raw, analysis, (Preset("s", (100, 100), "smart", {"webp": 95}),), encoders={}, max_pixels=10**8,
                          background=WHITE)
    got = pixels(r.data)
    assert got.std() < 6  # the right-hand window is the flat grey


def test_smart_crop_falls_back_to_saliency_and_cover_to_the_centre():
    raw = encode(_detail_left(), "PNG")
    analysis = {"width": 600, "height": 300}
    smart, centre = (Preset(n, (100, 100), fit, {"webp": 95}) for n, fit in (("s", "smart"), ("c", "cover")))
    out, _ = render_image(raw, analysis, (smart, centre), encoders={}, max_pixels=10**8, background=WHITE)
    by = {r.preset: pixels(r.data) for r in out}
    assert by["s"].std() > 20  # it found the photo on the left
    assert by["c"].std() < 6  # the centre is flat grey


def test_renditions_are_close_to_a_high_quality_resize():
    src = asymmetric((1800, 1200))
    raw = exif_jpeg(src, quality=95)
    presets = [contain("a", 1200), contain("b", 600), contain("c", 300), Preset("s", (128, 128), "cover", {"jpeg": 90})]
    outputs, _ = render(raw, presets)
    full = Image.open(io.BytesIO(raw)).convert("L")
    for r in outputs:
        if r.preset == "s":
            ref = ImageOps.fit(full, (128, 128), Image.Resampling.LANCZOS)
        else:
            ref = full.resize(r.size, Image.Resampling.LANCZOS)
        got = np.asarray(Image.open(io.BytesIO(r.data)).convert("L"))
        assert structural_similarity(got, np.asarray(ref)) >= 0.97, r.preset
