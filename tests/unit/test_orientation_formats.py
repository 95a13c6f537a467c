"""Every EXIF orientation 1..8 in every still format we read comes out upright, in analyze and in render.

One asymmetric picture (a dark block top-left, a smaller one top-right, on a landscape canvas),
stored turned as a camera stores it, with the orientation tag that turns it back. TIFF is made
with and without libtiff (Pillow decodes uncompressed and packbits strips itself; LZW and group4
go through libtiff), because Pillow's TIFF reader applies the tag itself on load: read before
load and applied again, a picture came out mirrored or turned (issue 21).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, TiffImagePlugin

from localcloud import samples
from services.analyze.image import analyze_image
from services.media.orientation import ORIENTATION_TAG, left_to_apply, orientation
from services.render.image import render_image
from services.render.presets import Preset

MAX_PIXELS = 10**8
WHITE = (255, 255, 255)
UPRIGHT = (96, 64)
# Pixels a camera stores so that a viewer applying the orientation shows the upright picture.
STORED_FROM_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright() -> Image.Image:
    """White, a black block top-left (a quarter of each side) and a smaller one top-right: every
    one of the eight orientations puts the two blocks somewhere else. Black and white, so the
    1-bit group4 TIFF holds it exactly."""
    w, h = UPRIGHT
    im = Image.new("RGB", UPRIGHT, WHITE)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, w // 4 - 1, h // 4 - 1), fill=(0, 0, 0))
    draw.rectangle((w - w // 8, 0, w - 1, h // 8 - 1), fill=(0, 0, 0))
    return im


def stored(o: int) -> Image.Image:
    im = upright()
    return im.transpose(STORED_FROM_UPRIGHT[o]) if o > 1 else im


def exif(o: int) -> bytes:
    e = Image.Exif()
    e[ORIENTATION_TAG] = o
    return e.tobytes()


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def tiff(compression: str | None, mode: str = "RGB"):
    return lambda o: save(stored(o).convert(mode), "TIFF", compression=compression, tiffinfo={ORIENTATION_TAG: o})


def tiff_xmp(o: int) -> bytes:
    """Orientation only in XMP: Pillow reports the stored size at open, yet turns the pixels on load."""
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{o}"/></rdf:RDF></x:xmpmeta>')
    return save(stored(o), "TIFF", compression="tiff_lzw", tiffinfo={700: xmp.encode()})


def tiff_ascii_tag(o: int) -> bytes:
    """The tag stored as ASCII text "6": Pillow neither swaps the size nor turns the pixels; we do."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[ORIENTATION_TAG] = str(o)
    ifd.tagtype[ORIENTATION_TAG] = 2  # ASCII
    return save(stored(o), "TIFF", tiffinfo=ifd)


MAKERS = {
    "tiff-raw": tiff(None),  # Pillow's own decoder
    "tiff-packbits": tiff("packbits"),  # Pillow's own decoder too
    "tiff-lzw": tiff("tiff_lzw"),  # libtiff
    "tiff-deflate-grey": tiff("tiff_adobe_deflate", "L"),  # libtiff, greyscale
    "tiff-group4": tiff("group4", "1"),  # libtiff, 1-bit (Pillow's g4_orientation_*.tif)
    "tiff-xmp": tiff_xmp,
    "tiff-ascii-tag": tiff_ascii_tag,
    "jpeg": lambda o: save(stored(o), "JPEG", quality=95, exif=exif(o)),
    "png-exif-chunk": lambda o: save(stored(o), "PNG", exif=exif(o)),
    "webp": lambda o: save(stored(o), "WEBP", lossless=True, exif=exif(o)),
    "heic": lambda o: samples.heic_bytes(upright(), o, quality=95),  # it stores the pixels turned, irot/imir to show them
}


def dark(arr: np.ndarray) -> bool:
    return float(arr.mean()) < 80


def assert_upright(data: bytes, size: tuple[int, int]) -> None:
    """The rendition is the upright picture: its size, the blocks where they belong, the rest white."""
    got = np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)
    assert (got.shape[1], got.shape[0]) == size
    w, h = size
    corner = (w // 10, h // 10)  # inside the smaller block
    assert dark(got[:corner[1], :corner[0]]), "the big block must be top-left"
    assert dark(got[:corner[1], w - corner[0]:]), "the small block must be top-right"
    assert not dark(got[h - corner[1]:, :corner[0]]), "bottom-left must be white"
    assert not dark(got[h - corner[1]:, w - corner[0]:]), "bottom-right must be white"
    want = np.asarray(upright().convert("L").resize(size, Image.Resampling.LANCZOS), np.float32)
    assert np.abs(got - want).mean() < 12


@pytest.mark.parametrize("o", range(1, 9))
@pytest.mark.parametrize("kind", MAKERS)
def test_every_orientation_is_analysed_and_rendered_upright(kind, o):
    raw = MAKERS[kind](o)
    a = analyze_image(raw, MAX_PIXELS)
    assert (a["width"], a["height"]) == UPRIGHT
    # The orientation the file declares (HEIC: the container's transform, which libheif applies
    # while decoding, so pillow-heif declares 1).
    assert a["orientation"] == a["exif"]["orientation"] == (1 if kind == "heic" else o)
    [r], skipped = render_image(raw, a, (Preset("t", (96, 96), "contain", {"webp": 100}),), encoders={}, max_pixels=MAX_PIXELS,
                                background=WHITE)
    assert skipped == []
    assert_upright(r.data, UPRIGHT)


@pytest.mark.parametrize("o", range(1, 9))
def test_a_tiff_orientation_is_left_to_pillow_and_not_applied_again(o):
    im = Image.open(io.BytesIO(MAKERS["tiff-lzw"](o)))
    assert orientation(im) == o  # what the file declares
    assert left_to_apply(im) == 1  # Pillow's TIFF reader turns the pixels itself on load
    im = Image.open(io.BytesIO(MAKERS["jpeg"](o)))
    assert left_to_apply(im) == o
