"""HEIC/HEIF in Pillow (pillow-heif), registered once for every stage that opens images.

libheif applies the container's own transforms (`irot` rotation, `imir` mirror) while
decoding and pillow-heif then reports EXIF orientation 1, so a HEIF image comes out upright
and is analysed and rendered like an upright JPEG (the original EXIF value stays in
`info["original_orientation"]`).

A HEIF file may hold several images (a burst, a collection): it is read as its primary
image only, and `info["heif_images"]` says how many it holds, so analysis can note it.
"""
from __future__ import annotations

import pillow_heif
from PIL import Image
from pillow_heif.as_plugin import HeifImageFile

IMAGES_KEY = "heif_images"


class PrimaryHeifImageFile(HeifImageFile):
    """A HEIF file as its primary image: never animated, no other frame to seek to."""

    _images = 1

    def _init_from_heif_file(self, img_index: int) -> None:
        super()._init_from_heif_file(img_index)
        self.info[IMAGES_KEY] = self._images

    @property
    def n_frames(self) -> int:
        return 1

    @property
    def is_animated(self) -> bool:
        return False

    def seek(self, frame: int):
        if frame != 0:
            raise EOFError("a HEIF file is read as its primary image only")


def register() -> None:
    pillow_heif.register_heif_opener()


def primary_only(im: Image.Image) -> Image.Image:
    """Every opened image passes here (services/media/imaging.py): a HEIF one becomes its
    primary image. (A class swap, not a registered subclass: other libraries, imageio for one,
    register pillow-heif's own opener again over any we register.)"""
    if isinstance(im, HeifImageFile) and not isinstance(im, PrimaryHeifImageFile):
        images = im.n_frames
        im.__class__ = PrimaryHeifImageFile
        im._images = images  # type: ignore[attr-defined]  # what PrimaryHeifImageFile reads
        im.info[IMAGES_KEY] = images
    return im
