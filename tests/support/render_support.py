"""Real test media for the render tests, built in-process (no downloads): EXIF, GPS, ICC, modes, animation."""
from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from localcloud import samples
from services.render.presets import Preset

EXIF_ORIENTATION = 0x0112
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
BODY_SERIAL = 0xA431
SERIAL = "SN-SECRET-4242"

# Pillow's exif_transpose turns a stored image upright with these; the inverse makes a stored image from an upright one.
UPRIGHT_FROM_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
STORED_FROM_UPRIGHT = {**UPRIGHT_FROM_STORED, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def contain(name: str, edge: int, formats=None) -> Preset:
    return Preset(name, (edge, edge), "contain", formats or {"jpeg": 90})


def asymmetric(size=(480, 320)) -> Image.Image:
    """A photo with a red block in its top-left corner: any flip or turn moves the block."""
    im = samples.photo("chelsea").convert("RGB").resize(size)
    im.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))
    return im


def exif_jpeg(im: Image.Image, orientation: int = 1, gps: bool = True, quality: int = 92) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    exif[0x010F] = "CameraMaker"
    exif[0x0110] = "Model X"
    exif.get_ifd(EXIF_IFD)[BODY_SERIAL] = SERIAL
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, exif=exif.tobytes(), comment=b"private comment")
    return buf.getvalue()


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def s15f16(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def rgb_profile(desc: str, red, green, blue, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile (D50 PCS), e.g. Display-P3-like primaries."""
    def xyz(v):
        return b"XYZ " + b"\0" * 4 + b"".join(s15f16(c) for c in v)

    def text_desc(s: str):
        a = s.encode() + b"\0"
        return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + b"\0" * 8 + b"\0" * 3 + b"\0" * 67

    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", text_desc(desc)), (b"cprt", b"text" + b"\0" * 4 + b"public domain\0"),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)), (b"bXYZ", xyz(blue)),
        (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + s15f16(0.9642) + s15f16(1.0) + s15f16(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


# Display P3 colorants adapted to D50 (as in Apple's Display P3 profile).
P3_PROFILE = rgb_profile("Display P3 (test)", (0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))


def flat(colour, size=(300, 200), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def mean_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32).reshape(-1, 3).mean(axis=0)


def animated_gif(n: int = 8, duration: int = 80) -> bytes:
    frames = [samples.photo("chelsea").rotate(i * 10) for i in range(n)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)
