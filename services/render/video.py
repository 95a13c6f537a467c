"""Video renditions: a poster frame (issue 5 adds per-shot stills and a storyboard)."""
from __future__ import annotations

import cv2
from PIL import Image

from ..analyze.video import open_video
from ..common.errors import CorruptMedia
from .image import fit

POSTER_POSITION = 0.1  # a tenth in: past fade-ins and black leaders


def poster_frame(raw: bytes, suffix: str, frame_count: int, long_edge: int) -> Image.Image:
    cap = open_video(raw, suffix)
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame_count * POSTER_POSITION))
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
        if not ok:
            raise CorruptMedia("no frame could be decoded for the poster", code="corrupt-video")
    finally:
        cap.release()
    im = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return fit(im, long_edge) if max(im.size) > long_edge else im
