"""Small files that declare a lot of work: made here, byte by byte where Pillow would not write them.

Shared by tests/test_bounded_media.py and bench/memory_bench.py. Every maker is fast and
holds little memory itself: big PNGs are deflated row by row (PNG's "Up" filter makes every
row after the first all zeros), GIF and WebP frames are tiny bitstreams repeated.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def big_png(width: int, height: int, *, alpha: bool = False, depth: int = 8, seed: int = 1) -> bytes:
    """A width x height PNG whose rows all repeat one patterned row (vertical stripes; with
    `alpha`, half transparent). 100 MP deflates to a few hundred KB."""
    channels = 4 if alpha else 3
    rng = np.random.default_rng(seed)
    x = np.arange(width)
    row = np.zeros((width, channels), np.uint16 if depth == 16 else np.uint8)
    top = 65535 if depth == 16 else 255
    row[:, 0] = (x * top // max(1, width - 1))
    row[:, 1] = rng.integers(0, top, width) // 4 + top // 2
    row[:, 2] = ((x // 64) % 2) * top
    if alpha:
        row[:, 3] = np.where((x // 512) % 2 == 0, top, 0)
    first = row.astype(">u2").tobytes() if depth == 16 else row.tobytes()
    comp = zlib.compressobj(6)
    parts = [comp.compress(b"\x00" + first)]
    zero = b"\x02" + bytes(len(first))  # filter Up: the same row again
    for _ in range(height - 1):
        parts.append(comp.compress(zero))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 6 if alpha else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def header_bomb_png(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds one row of them."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(3 * width))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def scan_bomb(scans: int, size: tuple[int, int] = (256, 256)) -> bytes:
    """A progressive JPEG whose last scan is repeated `scans` times: libjpeg decodes each one
    again (warning, not failing), so the work grows with the scan count, not the file."""
    buf = io.BytesIO()
    ramp = np.linspace(0, 255, size[0] * size[1] * 3).astype(np.uint8).reshape(size[1], size[0], 3)
    Image.fromarray(ramp).save(buf, "JPEG", progressive=True,
                                                                                        quality=90)
    raw = buf.getvalue()
    last = raw.rfind(b"\xff\xda")
    scan = raw[last:-2]
    have = raw[:last].count(b"\xff\xda") + 1
    return raw[:-2] + scan * max(0, scans - have) + b"\xff\xd9"


def many_frame_gif(frames: int, canvas: tuple[int, int]) -> bytes:
    """`frames` one-pixel frames on a big canvas (the 230 KB, 10 000-frame, 4000x4000 kind)."""
    w, h = canvas
    out = [b"GIF89a", struct.pack("<HHBBB", w, h, 0x80, 0, 0), b"\xff\x00\x00\x00\x00\xff"]  # 2-colour table
    out.append(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    frame = (b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # GCE: 10 ms
             + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
             + b"\x02\x02\x44\x01\x00")  # LZW: clear, index 0, end
    out.append(frame * frames)
    out.append(b"\x3b")
    return b"".join(out)


def _vp8l_pixel() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (1, 1), (200, 10, 10, 255)).save(buf, "WEBP", lossless=True)
    raw = buf.getvalue()
    i = raw.find(b"VP8L")
    size = struct.unpack("<I", raw[i + 4:i + 8])[0]
    return raw[i:i + 8 + size + (size & 1)]


def big_canvas_webp(frames: int, canvas: tuple[int, int]) -> bytes:
    """An animated WebP of `frames` 1x1 frames on a `canvas` (the 48 KB 10000x9999 kind)."""
    w, h = canvas
    px = _vp8l_pixel()

    def c24(v: int) -> bytes:
        return v.to_bytes(3, "little")

    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x02 | 0x10, 0, 0, 0]) + c24(w - 1) + c24(h - 1)
    anim = b"ANIM" + struct.pack("<I", 6) + b"\xff\xff\xff\xff" + b"\x00\x00"
    body = c24(0) + c24(0) + c24(0) + c24(0) + c24(40) + b"\x00" + px
    anmf = b"ANMF" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")
    payload = b"WEBP" + vp8x + anim + anmf * frames
    return b"RIFF" + struct.pack("<I", len(payload)) + payload
