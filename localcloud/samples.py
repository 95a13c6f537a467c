"""Sample media for `make run` and the tests, made from photos scikit-image ships (no downloads)."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skdata

EXIF_ORIENTATION = 0x0112


def jpeg_bytes(im: Image.Image, orientation: int | None = None, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[EXIF_ORIENTATION] = orientation
    im.convert("RGB").save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def photo(name: str = "astronaut") -> Image.Image:
    return Image.fromarray(getattr(skdata, name)())


def large_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12 MP JPEG: a real photo scaled up (detail is soft, but decode cost is real)."""
    return jpeg_bytes(photo("coffee").resize((width, height), Image.Resampling.BICUBIC))


def rotated_jpeg() -> bytes:
    """Stored sideways (300x451) with EXIF orientation 6: upright it is 451 wide, 300 tall."""
    upright = photo("chelsea")  # 451 x 300
    return jpeg_bytes(upright.transpose(Image.Transpose.ROTATE_90), orientation=6)


def alpha_png() -> bytes:
    im = photo("astronaut").convert("RGBA")
    alpha = Image.new("L", im.size, 0)
    alpha.paste(255, (64, 64, im.width - 64, im.height - 64))
    im.putalpha(alpha)
    return png_bytes(im)


def video_mp4(path: Path, seconds: float = 3.0, fps: int = 24, size=(640, 360)) -> bytes:
    """A short MPEG-4 clip: two photos with a hard cut between them and a moving box."""
    w, h = size
    shots = [np.array(photo(n).convert("RGB").resize(size))[:, :, ::-1] for n in ("coffee", "chelsea")]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    total = int(seconds * fps)
    for i in range(total):
        frame = shots[0 if i < total // 2 else 1].copy()
        x = int((w - 60) * i / total)
        cv2.rectangle(frame, (x, h // 2 - 30), (x + 60, h // 2 + 30), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def long_video_mp4(path: Path, seconds: float = 75.0, fps: int = 24, size=(426, 240)) -> Path:
    """A clip longer than VIDEO_SEGMENT_SECONDS (30 s by default: three segments), with sound:
    three photos joined by hard cuts, a moving box, a 440 Hz tone. H.264 + AAC through PyAV."""
    import av

    w, h = size
    names = ("astronaut", "coffee", "chelsea")
    shots = [np.array(photo(n).convert("RGB").resize(size)) for n in names]
    total = int(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28", "g": str(2 * fps)})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        for i in range(total):
            frame = shots[i * len(shots) // total].copy()
            x = int((w - 40) * (i % fps) / fps)
            cv2.rectangle(frame, (x, h // 2 - 20), (x + 40, h // 2 + 20), (255, 255, 255), -1)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        out.mux(video.encode())
        t = np.arange(int(seconds * 48000)) / 48000
        tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = np.stack([tone[start:start + 1024]] * 2)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, start
            for packet in audio.encode(af):
                out.mux(packet)
        out.mux(audio.encode())
    return path


def truncated_jpeg(tag: bytes = b"") -> bytes:
    """A JPEG cut off where its pixel data starts: passes type sniffing, fails as corrupt-media.

    `tag` goes into a comment segment, so each call can make different bytes (content-hash
    de-duplication) without adding pixel data. A JPEG cut later, inside its pixel data, is
    rendered as far as it goes (analysis `truncated: true`)."""
    whole = jpeg_bytes(photo("astronaut"))
    pos = 2
    while whole[pos + 1] != 0xDA:  # walk the segments to the start of scan
        pos += 2 + int.from_bytes(whole[pos + 2:pos + 4], "big")
    sos_end = pos + 2 + int.from_bytes(whole[pos + 2:pos + 4], "big")
    comment = b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag if tag else b""
    return whole[:2] + comment + whole[2:sos_end]


def write_samples(folder: Path) -> list[Path]:
    """The set `make run` submits: every one is expected to complete."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "astronaut.jpg": jpeg_bytes(photo("astronaut")),
        "coffee-12mp.jpg": large_jpeg(),
        "chelsea-rotated.jpg": rotated_jpeg(),
        "astronaut-alpha.png": alpha_png(),
    }
    paths = []
    for name, raw in files.items():
        path = folder / name
        path.write_bytes(raw)
        paths.append(path)
    video = folder / "cut.mp4"
    video_mp4(video)
    paths.append(video)
    paths.append(long_video_mp4(folder / "long-75s.mp4"))
    return paths


# The stored pixels for each orientation: the upright image put through the inverse transform.
_STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
           7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def heic_bytes(upright: Image.Image, orientation: int = 1, quality: int = 90) -> bytes:
    """A HEIC as a phone writes it: pixels stored sideways/mirrored, the display transform in
    the container (pillow-heif turns the EXIF orientation into `irot`/`imir` boxes)."""
    from services.media import heif

    heif.register()
    turn = _STORED[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="HEIF", exif=exif.tobytes(), quality=quality)
    return buf.getvalue()


def heic_burst(images: list[Image.Image], primary: int) -> bytes:
    """Several images in one HEIF file (a burst), `primary` the one to show."""
    from services.media import heif

    heif.register()
    buf = io.BytesIO()
    images[0].save(buf, format="HEIF", save_all=True, append_images=images[1:], primary_index=primary, quality=90)
    return buf.getvalue()
