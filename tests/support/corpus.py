"""A corpus of broken and odd image files, built from bytes here (no downloads).

Each `Case` says what a user must see when the file goes through the pipeline: the job
completes, or it fails with an error class whose reason names the problem (`words`).
Files are made with Pillow, struct and zlib; the damaged ones are cut or patched at a
known place, so each exercises one decoder path.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
from PIL import Image

from localcloud import samples
from services.common.config import declared

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]  # built on first use: collecting the tests makes no file
    outcome: str  # "completed" or the expected error_class
    words: tuple[str, ...] = ()  # the failure reason must contain each (case-insensitive)
    orientation: int | None = None  # expected analysis orientation (and renditions turned by it)
    checks: dict = field(default_factory=dict)  # further expectations on the completed job

    @cached_property
    def data(self) -> bytes:
        return self.make()


def asymmetric(size=(300, 200)) -> Image.Image:
    """A photo with a red block top-left: any flip or turn moves the block."""
    im = samples.photo("chelsea").convert("RGB").resize(size)
    im.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))
    return im


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# -- PNG chunk surgery --------------------------------------------------------------------

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], len(PNG_SIGNATURE)
    while pos < len(png):
        (n,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        out.append((kind, png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def assemble(parts: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(chunk(k, d) for k, d in parts)


def with_chunk_before(png: bytes, kind: bytes, data: bytes, before: bytes) -> bytes:
    parts = chunks(png)
    i = next(i for i, (k, _) in enumerate(parts) if k == before)
    return assemble(parts[:i] + [(kind, data)] + parts[i:])


def png_cut_in_idat() -> bytes:
    png = save(asymmetric(), "PNG")
    idat = png.index(b"IDAT")
    return png[: idat + 4 + (len(png) - idat) // 3]


def png_cut_in_ihdr() -> bytes:
    return save(asymmetric(), "PNG")[:20]


def png_idat_damaged() -> bytes:
    """Valid chunk structure (CRCs recomputed), but the compressed pixel stream is garbage."""
    parts = chunks(save(asymmetric(), "PNG"))
    parts = [(k, b"\x78\x9c" + bytes(range(256)) * 8 if k == b"IDAT" else d) for k, d in parts]
    return assemble(parts)


def png_text_bomb() -> bytes:
    """A zTXt chunk that inflates to 8 MB: a metadata decompression bomb."""
    payload = b"Comment\x00\x00" + zlib.compress(b"A" * (8 << 20), 9)
    return with_chunk_before(save(asymmetric(), "PNG"), b"zTXt", payload, b"IDAT")


def png_not_an_image() -> bytes:
    return PNG_SIGNATURE + bytes(range(256)) * 4


def png_xmp_orientation(orientation: int) -> bytes:
    xmp = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{orientation}"/>'
           f'</rdf:RDF></x:xmpmeta>').encode()
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp
    return with_chunk_before(save(stored_for(orientation), "PNG"), b"iTXt", itxt, b"IDAT")


def _exif_orientation(orientation: int) -> bytes:
    """A TIFF-structured EXIF block (no "Exif\\0\\0" prefix) holding only Orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()[6:]


def png_raw_profile_orientation(orientation: int) -> bytes:
    """ImageMagick's way: EXIF as hex in a zTXt 'Raw profile type exif' chunk."""
    body = b"Exif\x00\x00" + _exif_orientation(orientation)
    hexed = body.hex()
    text = f"\nexif\n{len(body):8d}\n" + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n"
    ztxt = b"Raw profile type exif\x00\x00" + zlib.compress(text.encode())
    return with_chunk_before(save(stored_for(orientation), "PNG"), b"zTXt", ztxt, b"IDAT")


def png_exif_after_pixels(orientation: int) -> bytes:
    """An eXIf chunk after the image data (allowed by the PNG spec)."""
    return with_chunk_before(save(stored_for(orientation), "PNG"), b"eXIf", _exif_orientation(orientation), b"IEND")


# Stored pixels that a viewer applying `orientation` shows as `asymmetric()` upright.
STORED_FROM_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270,
}


def stored_for(orientation: int) -> Image.Image:
    up = asymmetric()
    return up.transpose(STORED_FROM_UPRIGHT[orientation]) if orientation > 1 else up


# -- APNG ---------------------------------------------------------------------------------

def apng() -> bytes:
    frames = [asymmetric().rotate(i * 20) for i in range(4)]
    return save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)


def apng_sequence_broken() -> bytes:
    """fcTL/fdAT sequence numbers out of order (CRCs kept valid)."""
    parts = chunks(apng())
    out, seen = [], 0
    for k, d in parts:
        if k == b"fdAT":
            seen += 1
            if seen == 2:
                d = struct.pack(">I", 999) + d[4:]
        out.append((k, d))
    return assemble(out)


def apng_cut_in_later_frame() -> bytes:
    png = apng()
    third = [i for i in range(len(png)) if png.startswith(b"fdAT", i)][2]
    return png[: third + 40]


# -- GIF, TIFF, BMP -----------------------------------------------------------------------

def gif_later_frame_bomb() -> bytes:
    """A 16x16 GIF whose second frame's descriptor claims 20000x20000 pixels (400 MP)."""
    first = save(Image.new("P", (16, 16), 1), "GIF")
    assert first.endswith(b";")
    lzw = bytes([2, 2, 0x4C, 0x01, 0])  # a tiny valid LZW block
    frame2 = b"," + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0) + lzw
    return first[:-1] + frame2 + b";"


def tiff_second_ifd_broken() -> bytes:
    """Three pages; the second IFD's entry count points past the end and its tags are garbage."""
    pages = [asymmetric(), asymmetric().rotate(90, expand=False), asymmetric().rotate(180)]
    raw = bytearray(save(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert raw[:2] == b"II"
    first_ifd = struct.unpack("<I", raw[4:8])[0]
    n = struct.unpack("<H", raw[first_ifd:first_ifd + 2])[0]
    next_at = first_ifd + 2 + 12 * n
    second = struct.unpack("<I", raw[next_at:next_at + 4])[0]
    for i in range(2, 2 + 12 * 4, 12):  # first four entries of IFD 2: wrong type codes and counts
        raw[second + i + 2:second + i + 8] = struct.pack("<HI", 0x7777, 0xFFFFFFF)
    return bytes(raw)


def tiff_oriented(orientation: int, compression: str | None) -> bytes:
    """Pillow's reader turns these itself on load (libtiff for LZW, its own decoder for raw strips)."""
    return save(stored_for(orientation), "TIFF", compression=compression, tiffinfo={0x0112: orientation})


def bigtiff() -> bytes:
    return save(asymmetric(), "TIFF", big_tiff=True)


def tiff_lab() -> bytes:
    return save(asymmetric().convert("LAB"), "TIFF")


def tiff_webp_compressed() -> bytes:
    """Compression tag 50001 (WebP) on strips that are not WebP: valid structure, codec Pillow's libtiff lacks or rejects."""
    raw = bytearray(save(asymmetric(), "TIFF"))
    ifd = struct.unpack("<I", raw[4:8])[0]
    n = struct.unpack("<H", raw[ifd:ifd + 2])[0]
    for e in range(n):
        at = ifd + 2 + 12 * e
        if struct.unpack("<H", raw[at:at + 2])[0] == 259:
            raw[at + 8:at + 10] = struct.pack("<H", 50001)
    return bytes(raw)


def _bmp(width: int, height: int, bpp: int, compression: int, pixels: bytes, masks: tuple[int, ...] = ()) -> bytes:
    """A BITMAPV4-less BMP: 40-byte info header (+ masks for BI_BITFIELDS)."""
    extra = b"".join(struct.pack("<I", m) for m in masks)
    offset = 14 + 40 + len(extra)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, compression, len(pixels), 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + extra + pixels


def bmp_rgb565() -> bytes:
    arr = np.asarray(asymmetric((120, 80)), np.uint16)
    px = ((arr[..., 0] >> 3) << 11) | ((arr[..., 1] >> 2) << 5) | (arr[..., 2] >> 3)
    return _bmp(120, 80, 16, 3, px[::-1].astype("<u2").tobytes(), (0xF800, 0x07E0, 0x001F))


def bmp_odd_bitfields() -> bytes:
    """32-bit BI_BITFIELDS with masks no common decoder lays out (10-bit channels, shuffled)."""
    px = b"\x00\x10\x20\x30" * (64 * 64)
    return _bmp(64, 64, 32, 3, px, (0x000003FF, 0x3FF00000, 0x000FFC00))


def bmp_jpeg_compressed() -> bytes:
    """BI_JPEG (compression 4): a BMP wrapping JPEG data, meant for printers."""
    return _bmp(64, 64, 24, 4, samples.jpeg_bytes(asymmetric((64, 64))))


def bmp_truncated() -> bytes:
    raw = save(asymmetric((120, 80)), "BMP")
    return raw[: len(raw) // 3]


# -- JPEG ---------------------------------------------------------------------------------

def jpeg_600x400() -> bytes:
    return samples.jpeg_bytes(asymmetric((600, 400)))


def _sos_end(jpeg: bytes) -> int:
    """Offset just past the first SOS header: where the entropy-coded pixel data starts."""
    pos = 2
    while True:
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            return pos + 2 + length
        pos += 2 + length


def jpeg_header_only() -> bytes:
    whole = samples.jpeg_bytes(asymmetric((600, 400)))
    return whole[: _sos_end(whole)]


def jpeg_partly_truncated() -> bytes:
    whole = samples.jpeg_bytes(asymmetric((600, 400)))
    start = _sos_end(whole)
    return whole[: start + (len(whole) - start) * 2 // 3]


def jpeg_mistyped_orientation(orientation: int, ascii: bool) -> bytes:
    """Orientation stored with the wrong EXIF type: ASCII "6" or UNDEFINED bytes, as some apps write it."""
    typ, value = (2, f"{orientation}\x00".encode()) if ascii else (7, struct.pack("<H", orientation))
    entry = struct.pack("<HHI", 0x0112, typ, 2) + value + b"\x00\x00"
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + entry + b"\x00" * 4
    return save(stored_for(orientation), "JPEG", quality=90, exif=exif)


def webp_animated() -> bytes:
    frames = [asymmetric().rotate(i * 30) for i in range(5)]
    return save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=[100, 200, 100, 200, 100], loop=0)


def avif_animated() -> bytes:
    frames = [asymmetric().rotate(i * 30) for i in range(5)]
    return save(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=[100, 200, 100, 200, 100], loop=0)


def png_header_bomb() -> bytes:
    """IHDR declaring 40000x40000 pixels: refused without decoding."""
    parts = chunks(save(Image.new("RGB", (8, 8)), "PNG"))
    parts[0] = (b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
    return assemble(parts)


def tiny_png() -> bytes:
    return save(asymmetric((90, 60)), "PNG")


@cache
def build() -> list[Case]:
    """The corpus. Reasons are checked for the words a person needs, never library internals."""
    return [
        Case("png-cut-in-idat.png", png_cut_in_idat, "corrupt-media", ("truncated",)),
        Case("png-cut-in-ihdr.png", png_cut_in_ihdr, "corrupt-media", ("png",)),
        Case("png-idat-damaged.png", png_idat_damaged, "corrupt-media", ("png",)),
        Case("png-text-bomb.png", png_text_bomb, "corrupt-media", ("metadata",)),
        Case("png-not-an-image.png", png_not_an_image, "corrupt-media", ("png",)),
        Case("png-xmp-orientation-6.png", lambda: png_xmp_orientation(6), "completed", orientation=6),
        Case("png-raw-profile-orientation-3.png", lambda: png_raw_profile_orientation(3), "completed", orientation=3),
        Case("png-exif-after-pixels-8.png", lambda: png_exif_after_pixels(8), "completed", orientation=8),
        Case("apng-sequence-broken.png", apng_sequence_broken, "corrupt-media", ("frame",)),
        Case("apng-cut-in-later-frame.png", apng_cut_in_later_frame, "corrupt-media", ("frame",)),
        Case("gif-later-frame-bomb.gif", gif_later_frame_bomb, "limit-exceeded", ("MAX_IMAGE_PIXELS",)),
        Case("tiff-second-ifd-broken.tiff", tiff_second_ifd_broken, "corrupt-media", ("tiff",)),
        Case("bigtiff.tiff", bigtiff, "completed"),
        Case("tiff-lzw-orientation-6.tiff", lambda: tiff_oriented(6, "tiff_lzw"), "completed", orientation=6),
        Case("tiff-raw-orientation-7.tiff", lambda: tiff_oriented(7, None), "completed", orientation=7),
        Case("tiff-lab.tiff", tiff_lab, "unsupported-media", ("LAB",)),
        Case("tiff-webp-compressed.tiff", tiff_webp_compressed, "unsupported-media", ("compression",)),
        Case("bmp-rgb565.bmp", bmp_rgb565, "completed"),
        Case("bmp-odd-bitfields.bmp", bmp_odd_bitfields, "unsupported-media", ("bitfields",)),
        Case("bmp-jpeg-compressed.bmp", bmp_jpeg_compressed, "unsupported-media", ("compression",)),
        Case("bmp-truncated.bmp", bmp_truncated, "corrupt-media", ("truncated",)),
        Case("jpeg-600x400.jpg", jpeg_600x400, "completed", checks={"size": (600, 400), "truncated": False}),
        Case("jpeg-header-only.jpg", jpeg_header_only, "corrupt-media", ("no pixel data",)),
        Case("jpeg-partly-truncated.jpg", jpeg_partly_truncated, "completed", checks={"size": (600, 400), "truncated": True}),
        Case("jpeg-ascii-orientation-6.jpg", lambda: jpeg_mistyped_orientation(6, ascii=True), "completed", orientation=6),
        Case("jpeg-undefined-orientation-8.jpg", lambda: jpeg_mistyped_orientation(8, ascii=False), "completed", orientation=8),
        Case("webp-animated.webp", webp_animated, "completed", checks={"duration_ms": 700, "frames": 5}),
        Case("avif-animated.avif", avif_animated, "completed", checks={"duration_ms": 700, "frames": 5}),
        Case("png-tiny-90x60.png", tiny_png, "completed", checks={"size": (90, 60)}),
        Case("png-header-bomb.png", png_header_bomb, "limit-exceeded", ("MAX_IMAGE_PIXELS",)),
    ]


# What a failure reason may say (tests/cloud/test_corpus.py, tests/unit/test_decoding.py).
SETTINGS = {d.env for _, d in declared()}
# What a reason must never carry: an object repr, a memory address, a library's code or constant, a traceback.
NOT_FOR_PEOPLE = re.compile(r"<[^>]*object at|\b0x[0-9a-fA-F]+\b|decoder error|error -?\d+|Errno|Traceback"
                            r"|\w+Error\b|\w+Plugin\b")


def check_reason(reason: str, words: tuple[str, ...]) -> None:
    assert not NOT_FOR_PEOPLE.search(reason), reason
    for name in re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", reason):
        assert name in SETTINGS, f"{name} in {reason!r} is not one of our settings"
    for w in words:
        assert w.lower() in reason.lower(), (w, reason)
