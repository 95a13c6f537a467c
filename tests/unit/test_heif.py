"""HEIC/HEIF from phones, through the whole chain: sniffed, oriented by the container's
irot/imir, analysed and rendered like JPEG; a burst is read as its primary image, noted."""
from __future__ import annotations

from localcloud import samples
from services.media.mediatypes import HEIC, HEIF, sniff


def test_heif_brands_are_sniffed():
    upright = samples.photo("chelsea")
    assert sniff(samples.heic_bytes(upright)[:64]) == HEIC
    generic = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1miaf" + b"\0" * 40
    assert sniff(generic) == HEIF
    avif = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif" + b"\0" * 40
    assert sniff(avif).content_type == "image/avif"


