"""Video analysis with OpenCV: duration, fps, frame count, frame size, codec."""
from __future__ import annotations

import os
import tempfile

import cv2

from ..common.errors import CorruptMedia, LimitExceeded


def open_video(raw: bytes, suffix: str):
    """OpenCV reads from a path: spill to a temp file that is removed when closed."""
    tmp = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    try:
        tmp.write(raw)
        tmp.close()
        cap = cv2.VideoCapture(tmp.name)
    finally:
        os.unlink(tmp.name)  # the open capture keeps its descriptor
    if not cap.isOpened():
        raise CorruptMedia("cannot open video: no decoder accepts it", code="corrupt-video")
    return cap


def _fourcc(cap) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ").lower() or "unknown"


def analyze_video(raw: bytes, suffix: str, max_seconds: float, max_frames: int) -> dict:
    cap = open_video(raw, suffix)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, _ = cap.read()
        if not ok or fps <= 0 or width <= 0 or height <= 0:
            raise CorruptMedia("video has no decodable frame", code="corrupt-video")
        duration = frames / fps
        if duration > max_seconds:
            raise LimitExceeded(f"video lasts {duration:.1f} s, over MAX_VIDEO_SECONDS={max_seconds:g}", code="too-long")
        if frames > max_frames:
            raise LimitExceeded(f"video has {frames} frames, over MAX_VIDEO_FRAMES={max_frames}", code="too-many-frames")
        return {
            "format": suffix.lstrip("."),
            "codec": _fourcc(cap),
            "width": width,
            "height": height,
            "fps": round(fps, 3),
            "frame_count": frames,
            "duration_s": round(duration, 3),
        }
    finally:
        cap.release()
