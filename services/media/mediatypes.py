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
