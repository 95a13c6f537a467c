"""Video renditions: a poster, one still per shot, and a storyboard sprite with its WebVTT index.

Shots come from analyze (media-analyzed v2 `shots`); without them the whole video is one
shot. The poster is the keyframe of the best-scoring shot, else the sharpest of a few
frames from the first tenth (past fade-ins and black leaders). The storyboard samples one
frame every STORYBOARD_INTERVAL_SECONDS (widened so at most STORYBOARD_MAX_TILES tiles),
packs them in a grid JPEG, and the VTT maps each interval to its tile with a
`storyboard.jpg#xywh=x,y,w,h` media fragment. The sprite is named relative to the VTT
(both sit in renditions/{job_id}/), so the pair works from any host or CDN that serves them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..analyze.video import open_video
from ..common.errors import CorruptMedia
from .formats import encode, to_pillow
from .image import Rendition
from .presets import Preset
from .resize import fit_size, shrink

POSTER_WINDOW = 0.1  # the first tenth
POSTER_CANDIDATES = 5
SPRITE_NAME = "storyboard.jpg"


@dataclass
class Storyboard:
    sprite: bytes
    size: tuple[int, int]
    vtt: str
    tile: tuple[int, int]
    columns: int
    rows: int
    tiles: int
    interval_s: float


class Frames:
    """Random access to frames by time, through OpenCV (seek by frame index: exact in its FFmpeg backend)."""

    def __init__(self, raw: bytes, suffix: str, fps: float, frame_count: int):
        self.cap = open_video(raw, suffix)
        self.fps = fps or float(self.cap.get(cv2.CAP_PROP_FPS) or 25.0)
        self.count = frame_count or int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._next = 0

    def at_ms(self, ms: float) -> np.ndarray | None:
        index = max(0, min(self.count - 1, int(round(ms / 1000 * self.fps)))) if self.count else 0
        if index != self._next:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self.cap.read()
        self._next = index + 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        self.cap.release()


def sharpness(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def shots_of(analysis: dict) -> list[dict]:
    """analyze's shots (v2), else the whole video as one shot with no keyframe chosen."""
    shots = [s for s in analysis.get("shots") or [] if "keyframe_ms" in s]
    if shots:
        return shots
    duration_ms = float(analysis.get("duration_s") or 0) * 1000
    return [{"start_ms": 0, "end_ms": duration_ms, "keyframe_ms": None, "visual_score": None}]


def poster_time_ms(frames: Frames, analysis: dict) -> float:
    scored = [s for s in analysis.get("shots") or [] if s.get("keyframe_ms") is not None]
    if scored:
        return float(max(scored, key=lambda s: s.get("visual_score") or 0)["keyframe_ms"])
    window = float(analysis.get("duration_s") or 0) * 1000 * POSTER_WINDOW
    times = [window * i / max(1, POSTER_CANDIDATES - 1) for i in range(POSTER_CANDIDATES)]
    best, best_t = -1.0, 0.0
    for t in times:
        rgb = frames.at_ms(t)
        if rgb is not None and (s := sharpness(rgb)) > best:
            best, best_t = s, t
    return best_t


def _fit(rgb: np.ndarray, p: Preset) -> np.ndarray:
    size, s = fit_size(rgb.shape[1], rgb.shape[0], p.box)
    return shrink(rgb, size) if s < 1 else rgb


def _stills(rgb: np.ndarray, p: Preset, encoders: dict, preset_name: str, extra: dict) -> list[Rendition]:
    px = _fit(rgb, p)
    size = (px.shape[1], px.shape[0])
    return [Rendition(preset_name, fmt, size, encode(to_pillow(px, fmt, (0, 0, 0)), fmt, q, encoders.get(fmt, {})), dict(extra))
            for fmt, q in p.formats.items()]


def vtt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def storyboard(frames: Frames, duration_s: float, width: int, height: int, tile_width: int, columns: int,
               interval_s: float, max_tiles: int, quality: int, sprite_name: str = SPRITE_NAME) -> Storyboard:
    interval = max(interval_s, duration_s / max_tiles) if duration_s > 0 else interval_s
    n = max(1, min(max_tiles, math.ceil(duration_s / interval - 1e-9))) if duration_s > 0 else 1
    tw = min(tile_width, width)
    th = max(2, round(tw * height / width))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    cues = ["WEBVTT", ""]
    for i in range(n):
        start = i * interval
        end = min(duration_s, (i + 1) * interval) if duration_s > 0 else interval
        rgb = frames.at_ms(min(start + interval / 2, max(0.0, duration_s - 0.001)) * 1000)
        x, y = (i % cols) * tw, (i // cols) * th
        if rgb is not None:
            sheet[y:y + th, x:x + tw] = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
        cues += [f"{vtt_time(start)} --> {vtt_time(end)}", f"{sprite_name}#xywh={x},{y},{tw},{th}", ""]
    sprite = encode(to_pillow(sheet, "jpeg", (0, 0, 0)), "jpeg", quality, {})
    return Storyboard(sprite, (sheet.shape[1], sheet.shape[0]), "\n".join(cues), (tw, th), cols, rows, n, interval)


def render_video(raw: bytes, suffix: str, analysis: dict, poster: Preset, still: Preset, encoders: dict,
                 tile_width: int, columns: int, interval_s: float, max_tiles: int, max_stills: int,
                 storyboard_quality: int) -> tuple[list[Rendition], Storyboard]:
    frames = Frames(raw, suffix, float(analysis.get("fps") or 0), int(analysis.get("frame_count") or 0))
    try:
        t_poster = poster_time_ms(frames, analysis)
        rgb = frames.at_ms(t_poster)
        if rgb is None:
            rgb = frames.at_ms(0)
        if rgb is None:
            raise CorruptMedia("no frame could be decoded for the poster", code="corrupt-video")
        renditions = _stills(rgb, poster, encoders, poster.name, {"time_ms": int(round(t_poster))})
        for i, shot in enumerate(shots_of(analysis)[:max_stills]):
            t = shot["keyframe_ms"] if shot.get("keyframe_ms") is not None else t_poster
            frame = rgb if t == t_poster else frames.at_ms(t)
            if frame is None:
                continue
            extra = {"shot": i, "time_ms": int(round(t))}
            renditions += _stills(frame, still, encoders, still.name, extra)
        board = storyboard(frames, float(analysis.get("duration_s") or 0), rgb.shape[1], rgb.shape[0],
                           tile_width, columns, interval_s, max_tiles, storyboard_quality)
    finally:
        frames.close()
    return renditions, board
