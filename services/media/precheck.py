"""Cheap checks from the bytes, before anything is decoded: one module for the door and the stages.

What a file declares in its headers is read here without decoding a pixel: canvas size,
frame count and durations (GIF, animated WebP, APNG), JPEG scan count, bit depth and
channels. From these come the refusals (pixels over MAX_IMAGE_PIXELS, scans over
JPEG_MAX_SCANS, one decoded frame over MEDIA_MEMORY_LIMIT_BYTES) and the memory a stage
declares before it starts the work (admission, services/media/sandbox.py).

Used at the door (ingest's upload route, answered 413 problem+json naming the setting) and
again in every stage: signed-URL uploads never pass through ingest's body.
A header we cannot parse is not refused here: the stage's decoder classifies the file.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from ..common.errors import MediarelayError, OverLimit, UnsupportedMedia

# What a stage holds per source pixel on top of one decoded frame (resampled copies, the
# encoder's buffers): the declared need is decoded bytes x this, for admission.
WORK_FACTOR = 1.5
# A (malicious) PNG or GIF can be made of tiny blocks: stop walking them past this many.
MAX_BLOCKS = 2_000_000


@dataclass(frozen=True)
class MediaFacts:
    format: str  # "jpeg", "png", "gif", "webp", or Pillow's name for the rest; "" unknown
    width: int = 0  # canvas, stored orientation
    height: int = 0
    frames: int = 1
    duration_ms: int = 0  # animations: the sum of the frame delays in the headers
    scans: int = 0  # JPEG: SOS markers (a progressive file has ~10; a scan bomb thousands)
    bytes_per_pixel: int = 4  # of one decoded frame (16-bit RGBA: 8)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """One frame decoded at full size: the biggest thing a still decode holds."""
        return self.pixels * self.bytes_per_pixel

    @property
    def need_bytes(self) -> int:
        """Declared memory need of a stage's work on this file (admission)."""
        return int(self.decoded_bytes * WORK_FACTOR)


def facts_of(raw: bytes) -> MediaFacts:
    """What the headers declare; MediaFacts("") when they cannot be read (the decoder will say why)."""
    try:
        if raw.startswith(b"\xff\xd8"):
            return _jpeg(raw)
        if raw.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(raw)
        if raw[:6] in (b"GIF87a", b"GIF89a"):
            return _gif(raw)
        if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            return _webp(raw)
        return _pillow(raw)
    except (IndexError, struct.error, ValueError):
        return MediaFacts("")


def check(raw: bytes, kind: str, settings) -> MediaFacts:
    """Refuse (OverLimit) what is over a limit from its headers alone; else return the facts."""
    if kind == "video":
        return check_video(raw, settings)
    facts = facts_of(raw)
    if not facts.format:
        return facts
    s = settings
    if facts.pixels > s.max_image_pixels:
        raise OverLimit(f"image declares {facts.width}x{facts.height} = {facts.pixels} pixels, over "
                        f"MAX_IMAGE_PIXELS={s.max_image_pixels}", "MAX_IMAGE_PIXELS", "too-many-pixels")
    if facts.scans > s.jpeg_max_scans:
        raise OverLimit(f"JPEG has {facts.scans} scans, over JPEG_MAX_SCANS={s.jpeg_max_scans} "
                        "(each scan is another pass over the whole image)", "JPEG_MAX_SCANS", "too-many-scans")
    if facts.decoded_bytes > s.media_memory_limit_bytes:
        raise OverLimit(f"decoding one {facts.width}x{facts.height} frame at {facts.bytes_per_pixel} bytes a pixel needs "
                        f"{facts.decoded_bytes // 2**20} MiB, over MEDIA_MEMORY_LIMIT_BYTES={s.media_memory_limit_bytes}",
                        "MEDIA_MEMORY_LIMIT_BYTES", "too-much-memory")
    return facts


def check_video(raw: bytes, settings) -> MediaFacts:
    """Duration, frame count and frame size from the container header (services/media/video.py),
    against MAX_VIDEO_SECONDS, MAX_VIDEO_FRAMES and MAX_VIDEO_FRAME_PIXELS: the door refuses
    them too. A container that cannot be opened is left to analyze, which says why; one that
    holds sound and no picture is refused here as it would be there (UnsupportedMedia)."""
    from .video import VideoFile, VideoLimits

    s = settings
    try:
        with VideoFile(raw) as video:
            video.check_header(VideoLimits(s.max_video_seconds, s.max_video_frames, s.max_video_frame_pixels))
    except OverLimit:
        raise
    except UnsupportedMedia as exc:
        if exc.code == "audio-only":
            raise
    except MediarelayError:
        pass
    return MediaFacts("")


# --- formats ---------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(raw: bytes) -> MediaFacts:
    """Segments up to the first scan; then every SOS marker (entropy-coded data stuffs 0xFF
    with 0x00, so FF DA there is always a marker): bytes.count, at memory speed."""
    i, width, height, comps = 2, 0, 0, 3
    n = len(raw)
    while i + 4 <= n:
        if raw[i] != 0xFF:
            raise ValueError("not a marker")
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", raw[i + 2:i + 4])[0]
        if marker in _SOF and not width:
            _, height, width, comps = struct.unpack(">BHHB", raw[i + 4:i + 10])
        if marker == 0xDA:
            scans = 1 + raw.count(b"\xff\xda", i + 2)
            return MediaFacts("jpeg", width, height, 1, 0, scans, {1: 1, 4: 4}.get(comps, 3))
        i += 2 + length
    return MediaFacts("jpeg", width, height, 1, 0, 0, 3) if width else MediaFacts("")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}  # colour type -> decoded channels (palette: RGBA, as render reads it)


def _png(raw: bytes) -> MediaFacts:
    if raw[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk first: not a PNG the decoder can read")
    width, height, depth, ctype = struct.unpack(">IIBB", raw[16:26])
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError("IHDR dimensions out of the PNG range")
    bpp = _PNG_CHANNELS.get(ctype, 4) * (2 if depth == 16 else 1)
    if ctype == 0 and depth == 16:
        bpp = 2
    i, frames, total_ms, animated, blocks = 8, 1, 0, False, 0
    while i + 8 <= len(raw) and blocks < MAX_BLOCKS:
        length, ctype_ = struct.unpack(">I4s", raw[i:i + 8])
        blocks += 1
        if ctype_ == b"acTL":
            animated, frames = True, 0
        elif ctype_ == b"fcTL" and animated:
            frames += 1
            num, den = struct.unpack(">HH", raw[i + 8 + 20:i + 8 + 24])
            total_ms += num * 1000 // (den or 100)
        elif ctype_ == b"IDAT" and not animated or ctype_ == b"IEND":
            break
        i += 12 + length
    return MediaFacts("png", width, height, max(frames, 1), total_ms if animated else 0, 0, bpp)


def _sub_blocks(raw: bytes, i: int) -> int:
    while raw[i]:
        i += raw[i] + 1
    return i + 1


def _gif(raw: bytes) -> MediaFacts:
    width, height, packed = struct.unpack("<HHB", raw[6:11])
    i = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    frames, total_cs, blocks, n = 0, 0, 0, len(raw)
    while i < n and blocks < MAX_BLOCKS:
        blocks += 1
        b = raw[i]
        if b == 0x3B:  # trailer
            break
        if b == 0x21:  # extension: label, then sub-blocks (a GCE's first holds the delay)
            if raw[i + 1] == 0xF9 and raw[i + 2] >= 4:
                total_cs += struct.unpack("<H", raw[i + 4:i + 6])[0]
            i = _sub_blocks(raw, i + 2)
        elif b == 0x2C:  # image descriptor; Pillow grows the canvas to a frame that overhangs it
            x, y, w, h, p = struct.unpack("<HHHHB", raw[i + 1:i + 10])
            width, height = max(width, x + w), max(height, y + h)
            frames += 1
            i += 10 + (3 * 2 ** ((p & 7) + 1) if p & 0x80 else 0)
            i = _sub_blocks(raw, i + 1)  # LZW minimum code size, then the data
        else:
            break  # damaged: what was counted stands, the decoder will judge the rest
    return MediaFacts("gif", width, height, max(frames, 1), total_cs * 10 if frames > 1 else 0, 0, 4)


def _webp(raw: bytes) -> MediaFacts:
    i, n = 12, min(len(raw), 8 + struct.unpack("<I", raw[4:8])[0])
    width = height = frames = total_ms = 0
    alpha, blocks = False, 0
    while i + 8 <= n and blocks < MAX_BLOCKS:
        blocks += 1
        fourcc, size = raw[i:i + 4], struct.unpack("<I", raw[i + 4:i + 8])[0]
        body = i + 8
        if fourcc == b"VP8X":
            alpha = bool(raw[body] & 0x10)
            width = 1 + int.from_bytes(raw[body + 4:body + 7], "little")
            height = 1 + int.from_bytes(raw[body + 7:body + 10], "little")
        elif fourcc == b"ALPH":
            alpha = True
        elif fourcc == b"ANMF":
            frames += 1
            total_ms += int.from_bytes(raw[body + 12:body + 15], "little")
        elif fourcc == b"VP8 " and not width:
            w, h = struct.unpack("<HH", raw[body + 6:body + 10])
            width, height = w & 0x3FFF, h & 0x3FFF
        elif fourcc == b"VP8L" and not width:
            bits = int.from_bytes(raw[body + 1:body + 5], "little")
            width, height, alpha = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
        i = body + size + (size & 1)
    return MediaFacts("webp", width, height, max(frames, 1), total_ms if frames > 1 else 0, 0, 4 if alpha or frames else 3)


def _pillow(raw: bytes) -> MediaFacts:
    """TIFF, BMP, AVIF: Pillow's own header parser (lazy open: nothing is decoded)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the size is judged by `check`, not here
        try:
            with Image.open(io.BytesIO(raw)) as im:
                bands = len(im.getbands())
                depth = 2 if im.mode in ("I;16", "I;16B", "I;16L", "I", "F") else 1
                return MediaFacts((im.format or "").lower(), im.width, im.height, 1, 0, 0, max(3, bands) * depth)
        except Exception:  # noqa: BLE001 - not ours to classify: the stage's decoder does that, behind its guard
            return MediaFacts("")
        finally:
            Image.MAX_IMAGE_PIXELS = saved
