"""The real type of an upload, from its first bytes: never trust the client's Content-Type."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaType:
    content_type: str
    kind: str  # "image" | "video"
    extension: str


JPEG = MediaType("image/jpeg", "image", "jpg")
PNG = MediaType("image/png", "image", "png")
GIF = MediaType("image/gif", "image", "gif")
WEBP = MediaType("image/webp", "image", "webp")
TIFF = MediaType("image/tiff", "image", "tiff")
BMP = MediaType("image/bmp", "image", "bmp")
AVIF = MediaType("image/avif", "image", "avif")
HEIC = MediaType("image/heic", "image", "heic")  # HEVC-coded HEIF: what phones take
HEIF = MediaType("image/heif", "image", "heif")  # HEIF with another (or an unnamed) codec
MP4 = MediaType("video/mp4", "video", "mp4")
MOV = MediaType("video/quicktime", "video", "mov")
WEBM = MediaType("video/webm", "video", "webm")
MKV = MediaType("video/x-matroska", "video", "mkv")
AVI = MediaType("video/x-msvideo", "video", "avi")

ALLOWED = (JPEG, PNG, GIF, WEBP, TIFF, BMP, AVIF, HEIC, HEIF, MP4, MOV, WEBM, MKV, AVI)

# Said of a file that holds sound and no picture, at the door (415) and by a stage (unsupported-media).
AUDIO_ONLY = "an audio-only file: mediarelay processes images and videos"
# The first packet of an Ogg stream names its codec; these are sound (Theora, Ogg's video, is not).
_OGG_AUDIO = ((b"\x01vorbis", "Ogg"), (b"OpusHead", "Ogg"), (b"\x7fFLAC", "Ogg"), (b"Speex   ", "Ogg"))

_ISO_BMFF_BRANDS = {
    b"avif": AVIF, b"avis": AVIF,
    b"heic": HEIC, b"heix": HEIC, b"heim": HEIC, b"heis": HEIC,
    b"hevc": HEIC, b"hevx": HEIC, b"hevm": HEIC, b"hevs": HEIC,
    b"qt  ": MOV,
    b"isom": MP4, b"iso2": MP4, b"iso4": MP4, b"iso5": MP4, b"iso6": MP4,
    b"mp41": MP4, b"mp42": MP4, b"avc1": MP4, b"M4V ": MP4, b"dash": MP4, b"MSNV": MP4,
}


def sniff(head: bytes) -> MediaType | None:
    """Return the media type of a file starting with `head` (>= 64 bytes), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic TIFF and BigTIFF
        return TIFF
    if head[:2] == b"BM" and len(head) >= 26 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return BMP
    if head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM or Matroska, told apart by DocType
        return WEBM if b"webm" in head[:64] else MKV
    return None


def audio_only(head: bytes) -> str | None:
    """The name of an audio-only format whose first bytes these are, or None. (Containers that
    may hold video too, MP4/MOV/Matroska, are sniffed as video: a probe of their tracks tells.)"""
    if head[:3] == b"ID3" or _mpeg_audio_frame(head):
        return "MP3"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:4] == b"caff":
        return "CAF"
    if head[:5] == b"#!AMR":
        return "AMR"
    if head[:4] == b"OggS" and len(head) > 27:
        packet = head[27 + head[26]:]  # after the page header and its segment table
        return next((name for magic, name in _OGG_AUDIO if packet.startswith(magic)), None)
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio (MP1/2/3) or ADTS AAC frame header: 11 sync bits, then fields with reserved values excluded."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    if layer == 0:  # ADTS (AAC): version bits are MPEG-4/MPEG-2, the layer is always 0
        return (head[2] >> 2) & 0xF < 13  # sampling frequency index
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and bitrate != 15 and rate != 3


def _iso_bmff(head: bytes) -> MediaType | None:
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    if major in _ISO_BMFF_BRANDS:
        return _ISO_BMFF_BRANDS[major]
    # Otherwise look through the compatible brands listed in the ftyp box.
    end = min(box_size, len(head))
    brands = [head[i:i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _ISO_BMFF_BRANDS:
            return _ISO_BMFF_BRANDS[brand]
    # Generic HEIF (image items / image sequence) naming no codec we know by brand.
    if major in (b"mif1", b"msf1") or b"mif1" in brands or b"msf1" in brands:
        return HEIF
    return None


def suffix_for(content_type: str) -> str:
    """File suffix for a sniffed content type (OpenCV picks its demuxer by it)."""
    for m in ALLOWED:
        if m.content_type == content_type:
            return "." + m.extension
    return ".bin"
