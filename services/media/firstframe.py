"""The first frame of an animated WebP, without libwebp's animation decoder.

Pillow opens every animated WebP through WebPAnimDecoder, which holds two full canvases of
its own (current and previous frame) before Pillow copies the frame out: 12 bytes a canvas
pixel before anything is done, 1.2 GB for a 48 KB file declaring a 10000x9999 canvas. The
first frame needs none of that: its bitstream is the first ANMF chunk, decoded as a still
WebP of the frame's own size and placed on a transparent canvas (what the animation decoder
starts from: it ignores the background colour hint). GIF and APNG first frames are cheap in
Pillow already (one frame, canvas-sized).
"""
from __future__ import annotations

import io
import struct

from PIL import Image


def _first_anmf(raw: bytes) -> tuple[int, int, int, int, bytes] | None:
    i, n = 12, min(len(raw), 8 + struct.unpack("<I", raw[4:8])[0])
    while i + 8 <= n:
        fourcc, size = raw[i:i + 4], struct.unpack("<I", raw[i + 4:i + 8])[0]
        if fourcc == b"ANMF":
            body = raw[i + 8:i + 8 + size]
            x, y = 2 * int.from_bytes(body[0:3], "little"), 2 * int.from_bytes(body[3:6], "little")
            w, h = 1 + int.from_bytes(body[6:9], "little"), 1 + int.from_bytes(body[9:12], "little")
            return x, y, w, h, body[16:]
        i += 8 + size + (size & 1)
    return None


def first_webp_frame(raw: bytes, canvas: tuple[int, int]) -> Image.Image | None:
    """The first frame on its canvas (RGBA), or None when the file is not laid out as expected
    (the caller then lets Pillow's own decoder judge it)."""
    found = _first_anmf(raw)
    if found is None:
        return None
    x, y, w, h, chunks = found
    if x + w > canvas[0] or y + h > canvas[1]:
        return None
    has_alpha = b"ALPH" in chunks[:4]
    if has_alpha:  # an ALPH chunk needs a VP8X header to be read
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x10, 0, 0, 0]) + (w - 1).to_bytes(3, "little") \
            + (h - 1).to_bytes(3, "little")
        payload = b"WEBP" + vp8x + chunks
    else:
        payload = b"WEBP" + chunks
    still = Image.open(io.BytesIO(b"RIFF" + struct.pack("<I", len(payload)) + payload))
    still.load()
    frame = still.convert("RGBA")
    if (x, y, w, h) == (0, 0, *canvas):
        return frame
    out = Image.new("RGBA", canvas, (0, 0, 0, 0))
    out.paste(frame, (x, y))
    return out
