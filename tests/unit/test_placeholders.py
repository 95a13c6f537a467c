"""ThumbHash and BlurHash: the same text as the reference encoders, short, and in the analysis."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from localcloud import samples
from services.analyze.image import analyze_image
from services.media.placeholders import blurhash, fit_within, placeholders, thumbhash

# Made by the reference ports on the same <=100 px copies (INTER_AREA): thumbhash-python 1.0.1's
# rgba_to_thumbhash (evanw's algorithm, opaque) and blurhash-python 1.2.2 (woltapp's C encoder), 4x3
# components for landscape and square, 3x4 for portrait.
VECTORS = {
    "astronaut": ("3EgKFwhpaIVPh2aHVnh5WIdp+SVif0IG", "LOJ7Bz:*IptR.m9[RlxaOqkWRjIo"),
    "chelsea": ("XEkGFYL2V2ix5qmreEWIhQx31HBm", "L8HT,6#QyZxW9Zx]RQ?HkY%2xYR."),
    "camera": ("IAgOBwCAiZidmnetdodoZ3iHCAAAAAAA", "LTHV9w9Ft7%M~qxu%Mxu_3xuRjWB"),
    "horse": ("AAgCBoCmtXmViGivhbdXd5ZnAAAAAAA=", "L009jvfQj[ayayj[fQfQj[j[ayfQ"),
    "rocket": ("EOcFFYItd2ZwiZd1h4iIdnZwbgbn", "L87d^K%i9Zad0NRj-TfR#hjDNKkC"),
}


def _rgb(name: str) -> np.ndarray:
    a = getattr(data, name)()
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return fit_within(a[..., :3].astype(np.uint8), 100)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_both_hashes_are_the_reference_encoders_text(name):
    small = _rgb(name)
    assert (thumbhash(small), blurhash(small)) == VECTORS[name]


def test_portrait_blurhash_has_three_by_four_components():
    portrait = np.ascontiguousarray(_rgb("astronaut")[:, :60])
    assert blurhash(portrait)[0] == "T"  # base83 of (3 - 1) + (4 - 1) * 9, the size flag


def test_every_placeholder_fits_in_forty_characters_whatever_the_shape():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (3, 500), (500, 3), (375, 500), (512, 512), (100, 99)]:
        got = placeholders(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        assert all(len(v) <= 40 for v in got.values()), (h, w, got)


def test_a_still_s_analysis_carries_its_placeholders():
    got = analyze_image(samples.jpeg_bytes(samples.photo("astronaut")), 100_000_000)
    assert set(got["placeholders"]) == {"thumbhash", "blurhash"}
    assert len(got["placeholders"]["thumbhash"]) <= 40 and len(got["placeholders"]["blurhash"]) == 28
