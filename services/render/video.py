"""Video renditions: a poster, one still per shot, and a storyboard sprite with its WebVTT index.

The wanted moments (poster, or its candidates; each shot's keyframe; one storyboard sample per
interval) are listed once (`moments`), and each is served by the frame a player shows at that moment
(the last frame whose PTS is not after it) in ONE forward decoding pass (services/media/video.py)
that stops once the last moment is served. Stills are encoded as their frame passes, so memory holds
one frame and the tiles, not every still. A long video does this per segment: at fan-out `assign`
gives each segment the moments its frames are shown at (`Moment.as_dict` for its message),
`render_moments` serves them from the segment's span only (in its bounded child), and at fan-in
`choose_poster` picks the poster among the segments' choices (`collect_renditions` orders them, in
memory) and `compose_storyboard` builds the sprite from their lossless tile strips. The whole video is
the one-span case (`render_video`): both give the same frames and sprite.

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

import bisect
import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..analyze.phash import phash
from ..common.errors import CorruptMedia
from ..media.budget import Budget
from ..media.placeholders import fit_within, placeholders
from ..media.spans import Span
from ..media.video import SPAN_EPSILON, VideoFile, VideoLimits, display_rgb
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


def plan_storyboard(start_s: float, duration_s: float, width: int, height: int, *, tile_width: int, columns: int,
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


def storyboard_for(analysis: dict, tile_width: int, columns: int, interval_s: float, max_tiles: int) -> StoryboardPlan:
    """The plan from the analysis (`start_s`, `duration_s`, display `width`/`height`): one plan for the
    fan-out, every segment and the fan-in."""
    return plan_storyboard(float(analysis.get("start_s") or 0), float(analysis.get("duration_s") or 0),
                           int(analysis["width"]), int(analysis["height"]), tile_width=tile_width, columns=columns,
                           interval_s=interval_s, max_tiles=max_tiles)


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


# -- the moments a video's pictures are taken at -------------------------------------------------------
@dataclass(frozen=True, order=True)
class Moment:
    """A wanted picture: at `ms` on the video's clock, served by the frame a player shows then."""
    ms: float
    what: str  # poster (the best shot's keyframe) | candidate (for the poster) | still (a shot's keyframe) | tile
    i: int  # candidate number, shot index or tile index
    shows: tuple[int, ...] = ()  # poster/candidate: the shots without a keyframe of their own, which show the poster

    def as_dict(self) -> dict:
        return {"ms": self.ms, "what": self.what, "i": self.i, "shows": list(self.shows)}

    @classmethod
    def from_dict(cls, d: dict) -> Moment:
        return cls(float(d["ms"]), d["what"], int(d["i"]), tuple(d.get("shows") or ()))


def moments(analysis: dict, board: StoryboardPlan, max_stills: int) -> list[Moment]:
    """Every picture the video's renditions need, in time order (`analysis` with `start_s` and `duration_s`)."""
    start_s, duration_s = float(analysis.get("start_s") or 0), float(analysis.get("duration_s") or 0)
    shots = shots_of(analysis)[:max_stills]
    shows = tuple(i for i, shot in enumerate(shots) if shot.get("keyframe_ms") is None)
    scored = [s for s in analysis.get("shots") or [] if s.get("keyframe_ms") is not None]
    out: list[Moment] = []
    if scored:
        out.append(Moment(float(max(scored, key=lambda s: s.get("visual_score") or 0)["keyframe_ms"]), "poster", 0, shows))
    else:
        window = duration_s * 1000 * POSTER_WINDOW
        out += [Moment(start_s * 1000 + window * i / max(1, POSTER_CANDIDATES - 1), "candidate", i, shows)
                for i in range(POSTER_CANDIDATES)]
    out += [Moment(float(shot["keyframe_ms"]), "still", i) for i, shot in enumerate(shots) if shot.get("keyframe_ms") is not None]
    out += [Moment(t * 1000, "tile", i) for i, t in enumerate(board.samples)]
    return sorted(out)


def assign(wanted: list[Moment], segments: list[Span]) -> list[list[Moment]]:
    """The moments each segment serves: those its frames are shown at (before the first frame: the first
    segment; past the last: the last one). A moment within SPAN_EPSILON of a boundary is the later segment's."""
    starts = [s.start_s * 1000 - SPAN_EPSILON * 1000 for s in segments[1:]]
    out: list[list[Moment]] = [[] for _ in segments]
    for m in wanted:
        out[bisect.bisect_right(starts, m.ms)].append(m)
    return out


# -- serving moments from one span's frames ------------------------------------------------------------
@dataclass
class _Served:
    stills: dict[int, list[Rendition]] = field(default_factory=dict)  # shot -> its still in every format
    poster: dict | None = None
    tiles: dict[int, np.ndarray] = field(default_factory=dict)


def _serve(video: VideoFile, start_s: float | None, end_s: float | None, wanted: list[Moment], *, poster: Preset,
           still: Preset, encoders: dict, tile: tuple[int, int], limits: VideoLimits, budget: Budget | None) -> _Served:
    """One forward pass over the span's frames; each moment gets the last frame whose PTS is not after it."""
    sar, rotation = video.sar, video.rotation
    wanted = sorted(wanted)
    out = _Served()
    best_rgb, best_moment, best = None, None, -1.0

    def serve(frame, batch: list[Moment]) -> None:
        nonlocal best_rgb, best_moment, best
        full = None
        for m in batch:
            if m.what == "tile":
                tw, th = tile
                small = display_rgb(frame, sar, rotation, width=tw)
                if small.shape[:2] != (th, tw):
                    small = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
                out.tiles[m.i] = small
                continue
            if full is None:
                full = display_rgb(frame, sar, rotation)
            if m.what == "poster":
                best_rgb, best_moment, best = full, m, float("inf")
            elif m.what == "candidate":
                if (s := sharpness(full)) > best:
                    best, best_rgb, best_moment = s, full, m
            else:
                out.stills[m.i] = _stills(full, still, encoders, still.name, {"shot": m.i, "time_ms": int(round(m.ms))})

    check = (lambda n: budget.check("taking the video's stills")) if budget is not None else None
    pending, prev = 0, None
    if wanted:
        for f in video.frames(limits, check, start_s=start_s, end_s=end_s):
            t_ms = f.time * 1000
            batch = []
            while pending < len(wanted) and wanted[pending].ms < t_ms - 0.5:  # shown before this frame
                batch.append(wanted[pending])
                pending += 1
            if batch:
                serve(prev.frame if prev is not None else f.frame, batch)
            if pending == len(wanted):
                break
            prev = f
        if pending < len(wanted):
            if prev is None:
                raise CorruptMedia("no frame could be decoded for the video's stills", code="corrupt-video")
            serve(prev.frame, wanted[pending:])  # at or past the span's last frame
    if best_moment is not None and best_rgb is not None:
        t = int(round(best_moment.ms))
        one = _stills(best_rgb, still, encoders, still.name, {}) if best_moment.shows else []
        out.poster = {
            "ms": best_moment.ms, "time_ms": t,
            "sharpness": None if best_moment.what == "poster" else best,  # None: the analysis chose it
            # The poster stands for the video in the client's near-duplicate index and while a page loads.
            "phash": phash(cv2.cvtColor(fit_within(best_rgb, 512), cv2.COLOR_RGB2GRAY)),
            "placeholders": placeholders(best_rgb),
            "renditions": _stills(best_rgb, poster, encoders, poster.name, {"time_ms": t}),
            # Shots without a keyframe of their own (v1 analyses) show the poster.
            "stills": {i: [replace(r, extra={"shot": i, "time_ms": t}) for r in one] for i in best_moment.shows},
        }
    if budget is not None:
        budget.check("taking the video's stills")
    return out


def render_moments(path, start_s: float | None, end_s: float | None, wanted: list[Moment], *, poster: Preset, still: Preset,
                   encoders: dict, tile: tuple[int, int], limits: VideoLimits = VideoLimits(),
                   budget: Budget | None = None) -> dict:
    """The pictures of one segment's moments (`assign`), from the frames shown in [start_s, end_s).

    Picklable, for the stage: `stills` (Renditions of the shots whose keyframe is in the span), `poster`
    (this span's best poster choice, or None; `choose_poster` picks among the spans') and `tiles`:
    {"indices", "png"}, the span's storyboard tiles stacked top to bottom in one lossless PNG, so the
    sprite composed from every span's strips is the one the whole video gives, pixel for pixel."""
    if not wanted:
        return {"stills": [], "poster": None, "tiles": None}
    with VideoFile(path) as video:
        video.check_header(limits)
        served = _serve(video, start_s, end_s, wanted, poster=poster, still=still, encoders=encoders, tile=tile, limits=limits,
                        budget=budget)
    return {"stills": [r for i in sorted(served.stills) for r in served.stills[i]], "poster": served.poster,
            "tiles": tile_strip(served.tiles)}


def tile_strip(tiles: dict[int, np.ndarray]) -> dict | None:
    if not tiles:
        return None
    order = sorted(tiles)
    # OpenCV writes BGR. Level 1: measured on 720p tiles, levels 6-9 save 2-5 % of the bytes for 2.5-6x the time.
    _, png = cv2.imencode(".png", np.concatenate([tiles[i] for i in order])[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return {"indices": order, "png": png.tobytes()}


def strip_tiles(strip: dict, tile: tuple[int, int]) -> dict[int, np.ndarray]:
    bgr = cv2.imdecode(np.frombuffer(strip["png"], np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("a segment's storyboard tile strip is not a PNG image")
    rgb = bgr[:, :, ::-1]
    th = tile[1]
    return {i: rgb[k * th:(k + 1) * th] for k, i in enumerate(strip["indices"])}


# -- fan-in ----------------------------------------------------------------------------------------------
def choose_poster(posters: list[dict | None]) -> dict:
    """The poster among the spans' choices: the analysis's (best shot's keyframe), else the sharpest candidate
    (the earliest of equals, as one pass over the whole video would choose)."""
    found = [p for p in posters if p is not None]
    if not found:
        raise CorruptMedia("no frame could be decoded for the poster", code="corrupt-video")
    return min(found, key=lambda p: (p["sharpness"] is not None, -(p["sharpness"] or 0), p["ms"]))


def collect_renditions(results: list[dict]) -> list[Rendition]:
    """Poster first, then every shot's still in shot order: what render_video returns."""
    chosen = choose_poster([r["poster"] for r in results])
    stills: dict[int, list[Rendition]] = {r.extra["shot"]: [] for res in results for r in res["stills"]}
    for res in results:
        for r in res["stills"]:
            stills[r.extra["shot"]].append(r)
    stills.update(chosen["stills"])
    return list(chosen["renditions"]) + [r for i in sorted(stills) for r in stills[i]]


def compose_storyboard(board: StoryboardPlan, strips: list[dict | None], quality: int) -> Storyboard:
    """The sprite and its WebVTT from the spans' tile strips (render_moments' `tiles`)."""
    tiles: dict[int, np.ndarray] = {}
    for strip in strips:
        if strip is not None:
            tiles.update(strip_tiles(strip, board.tile))
    return _storyboard(board, tiles, quality)


def _storyboard(board: StoryboardPlan, tiles: dict[int, np.ndarray], quality: int) -> Storyboard:
    tw, th = board.tile
    sheet = np.zeros((board.rows * th, board.columns * tw, 3), np.uint8)
    for i, small in tiles.items():
        x, y = board.position(i)
        sheet[y:y + th, x:x + tw] = small
    sprite = encode(to_pillow(sheet, "jpeg", (0, 0, 0)), "jpeg", quality, {})
    return Storyboard(sprite, (sheet.shape[1], sheet.shape[0]), storyboard_vtt(board), board.tile, board.columns, board.rows,
                      board.tiles, board.interval_s)


def render_video(source, suffix: str, analysis: dict, *, poster: Preset, still: Preset, encoders: dict,
                 tile_width: int, columns: int, interval_s: float, max_tiles: int, max_stills: int,
                 storyboard_quality: int, limits: VideoLimits = VideoLimits(), budget: Budget | None = None
                 ) -> tuple[list[Rendition], Storyboard]:
    """The whole video as one span. `source`: a path, the file's bytes, or a binary file object."""
    del suffix  # the container is recognised from its bytes
    with VideoFile(source) as video:
        video.check_header(limits)
        start_s = float(analysis["start_s"]) if "start_s" in analysis else video.start_s()
        duration_s = float(analysis.get("duration_s") or video.duration_s() or 0)
        width, height = video.display_size()
        clock = analysis | {"start_s": start_s, "duration_s": duration_s, "width": width, "height": height}
        board = storyboard_for(clock, tile_width, columns, interval_s, max_tiles)
        wanted = moments(clock, board, max_stills)
        served = _serve(video, None, None, wanted, poster=poster, still=still, encoders=encoders, tile=board.tile,
                        limits=limits, budget=budget)
    result = {"stills": [r for i in sorted(served.stills) for r in served.stills[i]], "poster": served.poster}
    return collect_renditions([result]), _storyboard(board, served.tiles, storyboard_quality)
