"""Video renditions: a poster, one still per shot, and a storyboard sprite with its WebVTT index.

Everything is collected in ONE forward decoding pass (services/common/video.py): the wanted
moments (poster, or its candidates; each shot's keyframe; one storyboard sample per interval)
are sorted, and each is served by the frame a player shows at that moment (the last frame whose
PTS is not after it). Cost is linear in the video's length, whatever its keyframe interval, and
the pass stops once the last wanted moment is served. Stills are encoded as their frame passes,
so memory holds one frame and the sprite, not every still.

Shots come from analyze (media-analyzed v2/v3 `shots`; v3 times are PTS on the player's clock,
`start_s` included); without them the whole video is one shot. The poster is the keyframe of the
best-scoring shot, else the sharpest of a few frames from the first tenth (past fade-ins and black
leaders). The storyboard samples the middle of every STORYBOARD_INTERVAL_SECONDS (widened so at
most STORYBOARD_MAX_TILES tiles), packs them in a grid JPEG, and the VTT maps each interval to its
tile with a `storyboard.jpg#xywh=x,y,w,h` media fragment. The sprite is named relative to the VTT
(both sit in renditions/{job_id}/), so the pair works from any host or CDN that serves them.
Frames are shown as a player shows them: square pixels (SAR applied) and upright (display matrix).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..common.errors import CorruptMedia
from ..common.video import Limits, VideoFile, display_rgb
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


@dataclass
class StoryboardPlan:
    tile: tuple[int, int]
    columns: int
    rows: int
    interval_s: float
    cues: list[tuple[float, float]]  # (start, end) seconds, on the video's clock
    samples: list[float] = field(default_factory=list)  # the moment each tile shows

    @property
    def tiles(self) -> int:
        return len(self.cues)

    def position(self, i: int) -> tuple[int, int]:
        return (i % self.columns) * self.tile[0], (i // self.columns) * self.tile[1]


def plan_storyboard(start_s: float, duration_s: float, width: int, height: int, tile_width: int, columns: int,
                    interval_s: float, max_tiles: int) -> StoryboardPlan:
    interval = max(interval_s, duration_s / max_tiles) if duration_s > 0 else interval_s
    n = max(1, min(max_tiles, math.ceil(duration_s / interval - 1e-9))) if duration_s > 0 else 1
    tw = min(tile_width, width)
    th = max(2, round(tw * height / width))
    cols = min(columns, n)
    cues, samples = [], []
    for i in range(n):
        start = i * interval
        end = min(duration_s, (i + 1) * interval) if duration_s > 0 else interval
        cues.append((start_s + start, start_s + end))
        samples.append(start_s + min(start + interval / 2, max(0.0, duration_s - 0.001)))
    return StoryboardPlan((tw, th), cols, math.ceil(n / cols), interval, cues, samples)


def vtt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def storyboard_vtt(plan: StoryboardPlan, sprite_name: str = SPRITE_NAME) -> str:
    lines = ["WEBVTT", ""]
    for i, (start, end) in enumerate(plan.cues):
        x, y = plan.position(i)
        lines += [f"{vtt_time(start)} --> {vtt_time(end)}", f"{sprite_name}#xywh={x},{y},{plan.tile[0]},{plan.tile[1]}", ""]
    return "\n".join(lines)


def sharpness(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def shots_of(analysis: dict) -> list[dict]:
    """analyze's shots (v2/v3), else the whole video as one shot with no keyframe chosen."""
    shots = [s for s in analysis.get("shots") or [] if "keyframe_ms" in s]
    if shots:
        return shots
    start_ms = float(analysis.get("start_s") or 0) * 1000
    duration_ms = float(analysis.get("duration_s") or 0) * 1000
    return [{"start_ms": start_ms, "end_ms": start_ms + duration_ms, "keyframe_ms": None, "visual_score": None}]


def _fit(rgb: np.ndarray, p: Preset) -> np.ndarray:
    size, s = fit_size(rgb.shape[1], rgb.shape[0], p.box)
    return shrink(rgb, size) if s < 1 else rgb


def _stills(rgb: np.ndarray, p: Preset, encoders: dict, preset_name: str, extra: dict) -> list[Rendition]:
    px = _fit(rgb, p)
    size = (px.shape[1], px.shape[0])
    return [Rendition(preset_name, fmt, size, encode(to_pillow(px, fmt, (0, 0, 0)), fmt, q, encoders.get(fmt, {})), dict(extra))
            for fmt, q in p.formats.items()]


def render_video(source, suffix: str, analysis: dict, poster: Preset, still: Preset, encoders: dict,
                 tile_width: int, columns: int, interval_s: float, max_tiles: int, max_stills: int,
                 storyboard_quality: int, limits: Limits = Limits()) -> tuple[list[Rendition], Storyboard]:
    """`source`: a path, the file's bytes, or a binary file object. One forward pass over the frames."""
    del suffix  # the container is recognised from its bytes
    with VideoFile(source) as video:
        video.check_header(limits)
        start_s = float(analysis["start_s"]) if "start_s" in analysis else video.start_s()
        duration_s = float(analysis.get("duration_s") or video.duration_s() or 0)
        width, height = video.display_size()
        sar, rotation = video.sar, video.rotation
        board = plan_storyboard(start_s, duration_s, width, height, tile_width, columns, interval_s, max_tiles)
        scored = [s for s in analysis.get("shots") or [] if s.get("keyframe_ms") is not None]
        # Wanted moments, in ms on the video's clock: (ms, what, which).
        wanted: list[tuple[float, str, int]] = []
        if scored:
            t_poster = float(max(scored, key=lambda s: s.get("visual_score") or 0)["keyframe_ms"])
            wanted.append((t_poster, "poster", 0))
        else:
            t_poster = None
            window = duration_s * 1000 * POSTER_WINDOW
            wanted += [(start_s * 1000 + window * i / max(1, POSTER_CANDIDATES - 1), "candidate", i)
                       for i in range(POSTER_CANDIDATES)]
        shots = shots_of(analysis)[:max_stills]
        for i, shot in enumerate(shots):
            if shot.get("keyframe_ms") is not None:
                wanted.append((float(shot["keyframe_ms"]), "still", i))
        wanted += [(t * 1000, "tile", i) for i, t in enumerate(board.samples)]
        wanted.sort()

        sheet = np.zeros((board.rows * board.tile[1], board.columns * board.tile[0], 3), np.uint8)
        stills: dict[int, list[Rendition]] = {}
        poster_rgb, best = None, -1.0
        pending = 0

        def serve(frame, batch: list[tuple[float, str, int]]) -> None:
            nonlocal poster_rgb, best, t_poster
            full = None
            for t, what, i in batch:
                if what == "tile":
                    tw, th = board.tile
                    small = display_rgb(frame, sar, rotation, width=tw)
                    if small.shape[:2] != (th, tw):
                        small = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
                    x, y = board.position(i)
                    sheet[y:y + th, x:x + tw] = small
                    continue
                if full is None:
                    full = display_rgb(frame, sar, rotation)
                if what == "poster":
                    poster_rgb = full
                elif what == "candidate":
                    if (s := sharpness(full)) > best:
                        best, poster_rgb, t_poster = s, full, t
                else:
                    stills[i] = _stills(full, still, encoders, still.name, {"shot": i, "time_ms": int(round(t))})

        prev = None
        for f in video.frames(limits):
            t_ms = f.time * 1000
            batch = []
            while pending < len(wanted) and wanted[pending][0] < t_ms - 0.5:  # shown before this frame
                batch.append(wanted[pending])
                pending += 1
            if batch:
                serve(prev.frame if prev is not None else f.frame, batch)
            if pending == len(wanted):
                break
            prev = f
        if pending < len(wanted) and prev is not None:
            serve(prev.frame, wanted[pending:])  # at or past the last frame
        if poster_rgb is None or t_poster is None:
            raise CorruptMedia("no frame could be decoded for the poster", code="corrupt-video")
    # Shots without a keyframe of their own (v1 analyses) show the poster.
    for i, shot in enumerate(shots):
        if i not in stills and shot.get("keyframe_ms") is None:
            stills[i] = _stills(poster_rgb, still, encoders, still.name, {"shot": i, "time_ms": int(round(t_poster))})
    renditions = _stills(poster_rgb, poster, encoders, poster.name, {"time_ms": int(round(t_poster))})
    for i in sorted(stills):
        renditions += stills[i]
    sprite = encode(to_pillow(sheet, "jpeg", (0, 0, 0)), "jpeg", storyboard_quality, {})
    story = Storyboard(sprite, (sheet.shape[1], sheet.shape[0]), storyboard_vtt(board), board.tile, board.columns, board.rows,
                       board.tiles, board.interval_s)
    return renditions, story
