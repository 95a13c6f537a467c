"""Video analysis with OpenCV: header facts, then one decoding pass that finds the shots.

Limits from the header are checked before any frame is decoded; the decoded frame count and
the time budget are checked again while decoding, since a header can lie.
"""
from __future__ import annotations

import os
import tempfile

import cv2

from ..common.errors import CorruptMedia, LimitExceeded
from .budget import Budget
from .shots import CutDetector

# libavcodec pixel formats (as OpenCV's fourcc) whose first plane is 8-bit luma at full size: for these,
# OpenCV hands out that plane without the YUV->BGR conversion, which would cost ~40% of an H.264 decode.
LUMA_FIRST_FORMATS = {"I420", "IYUV", "YV12", "NV12", "NV21", "Y42B", "444P", "Y800", "J420", "J422", "J444"}
BUDGET_CHECK_FRAMES = 48


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


def _fourcc(value: float) -> str:
    code = int(value)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")


def _rotation(cap) -> int:
    meta = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
    return meta if meta in (0, 90, 180, 270) else 0


def luma_frames(cap, max_frames: int, budget: Budget):
    """Yield each frame's luma plane; raise LimitExceeded past max_frames or the time budget."""
    raw_luma = _fourcc(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) in LUMA_FIRST_FORMATS
    if raw_luma:
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    level = cv2.utils.logging.getLogLevel()
    # OpenCV warns once per frame that it hands out the raw plane "as 8UC1": that is what we asked for.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        n = 0
        while cap.grab():
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            n += 1
            if n > max_frames:
                raise LimitExceeded(f"video has more than MAX_VIDEO_FRAMES={max_frames} frames", code="too-many-frames")
            if n % BUDGET_CHECK_FRAMES == 0:
                budget.check(f"decoding frame {n}")
            yield frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    finally:
        cv2.utils.logging.setLogLevel(level)


DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320


def analyze_video(raw: bytes, suffix: str, max_seconds: float, max_frames: int, budget: Budget | None = None,
                  max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> dict:
    budget = budget or Budget.unlimited()
    cap = open_video(raw, suffix)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        header_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))  # OpenCV reports these upright (rotation applied)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if fps <= 0 or width <= 0 or height <= 0:
            raise CorruptMedia("video has no usable stream header", code="corrupt-video")
        duration = header_frames / fps
        if duration > max_seconds:
            raise LimitExceeded(f"video lasts {duration:.1f} s, over MAX_VIDEO_SECONDS={max_seconds:g}", code="too-long")
        if header_frames > max_frames:
            raise LimitExceeded(f"video has {header_frames} frames, over MAX_VIDEO_FRAMES={max_frames}", code="too-many-frames")
        if width * height > max_frame_pixels:
            raise LimitExceeded(f"video frames are {width}x{height}, over MAX_VIDEO_FRAME_PIXELS={max_frame_pixels}",
                                code="too-many-pixels")
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC)).lower() or "unknown"
        rotation = _rotation(cap)
        detector = None
        for luma in luma_frames(cap, max_frames, budget):
            if detector is None:
                detector = CutDetector(luma.shape[1], luma.shape[0])
            detector.push(luma)
        if detector is None:
            raise CorruptMedia("video has no decodable frame", code="corrupt-video")
        budget.check("finding shots")
        shots = detector.shots(detector.finish())
    finally:
        cap.release()

    def ms(frame: int) -> int:
        return int(round(frame * 1000 / fps))

    return {
        "format": suffix.lstrip("."),
        "codec": codec,
        "width": width,
        "height": height,
        "rotation": rotation,
        "fps": round(fps, 3),
        "frame_count": detector.n,
        "duration_s": round(detector.n / fps, 3),
        "shots": [
            {"start_ms": ms(s.start), "end_ms": ms(s.end), "keyframe_ms": ms(s.keyframe), "visual_score": s.visual_score}
            for s in shots
        ],
    }
