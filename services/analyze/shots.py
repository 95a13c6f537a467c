"""Scene cuts from luma thumbnails, one pass, a few microseconds per frame on top of decoding.

Each frame becomes a 32-px-wide luma thumbnail, normalised to zero mean and unit contrast, so
flashes, fades and slow lighting changes do not move it while a change of content does.
- Hard cut at t: the thumbnail distance d(t-1, t) is high, stands out from its neighbourhood
  (pans and zooms raise the whole neighbourhood, a cut is a lone spike: it must clear the busier
  side by a margin and be several times the calmer side, so a cut next to a whip pan still counts),
  and no frame shortly before resembles a frame shortly after (a flash or a passing occluder comes
  back; a cut does not).
- Fade: frames with no structure (nearly uniform: black, or a white-out) between two different
  contents; the cut is placed in the middle of that run. A run longer than a second is a shot of
  its own (a black or blank card): cuts at both of its ends.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tuning:
    thumb_width: int = 32
    cut_min: float = 0.5  # mean |diff| of normalised thumbnails (units of contrast) a hard cut must reach
    cut_over_baseline: float = 0.3  # ... above the median of the busier side (unrelated frames score ~1.13)
    cut_ratio: float = 2.0  # ... and this many times the median of the calmer side
    window: int = 12  # neighbourhood, frames each side
    interrupt_frames: int = 6  # a flash or occlusion shorter than this is not a cut
    interrupt_ratio: float = 0.5  # "comes back": a before/after pair closer than this share of the spike
    flat_std: float = 2.5  # luma std (0-255) of the thumbnail below which a frame has no structure (black, white-out)
    fade_min: float = 0.5  # contents on both sides of a flat run must differ this much
    flat_shot_frames: int = 24  # a flat run at least this long is a shot, not a transition
    min_shot_frames: int = 6
    sharp_every: int = 8  # sharpness sampled on every n-th frame (~0.25 ms at 720p; it only feeds the shot score)


@dataclass
class Shot:
    start: int  # first frame
    end: int  # one past the last frame
    keyframe: int
    visual_score: float


class CutDetector:
    """Feed luma frames (2-D uint8, any size) in order with `push`; `finish` returns the cut frames."""

    def __init__(self, width: int, height: int, tuning: Tuning = Tuning()):
        self.t = tuning
        # Stride into the frame first (a view, free), then one integer-factor area resize: ~30 us at 720p.
        self.step = max(1, min(width, height) // 180)
        sw, sh = width // self.step, height // self.step
        self.block = max(1, sw // tuning.thumb_width)
        self.tw, self.th = max(1, sw // self.block), max(1, sh // self.block)
        self.crop = (self.th * self.block * self.step, self.tw * self.block * self.step)
        self.sharp_step = max(1, min(width, height) // 360)
        k = tuning.interrupt_frames
        self.ring = np.zeros((2 * k + 2, self.th, self.tw), np.float32)
        self.ring_flat = [True] * (2 * k + 2)
        self.n = 0
        self.diff = array("f")  # d(t-1, t), 0 where either frame is flat
        self.flat = array("b")
        self.exposure = array("f")
        self.sharp = array("f")  # -1 where not sampled
        self.interrupted: set[int] = set()
        self.fades: list[int] = []
        self._before_flat: np.ndarray | None = None  # last structured thumbnail before a flat run
        self._flat_start = -1

    # -- per frame -------------------------------------------------------------------------------
    def push(self, luma: np.ndarray) -> None:
        t, tune = self.n, self.t
        ch, cw = self.crop
        small = luma[:ch:self.step, :cw:self.step]
        if small.shape != (self.th * self.block, self.tw * self.block):  # frame size changed mid-stream
            small = cv2.resize(luma, (self.tw * self.block, self.th * self.block), interpolation=cv2.INTER_NEAREST)
        thumb = cv2.resize(small, (self.tw, self.th), interpolation=cv2.INTER_AREA)
        mean, std = cv2.meanStdDev(thumb)
        mean, std = float(mean[0, 0]), float(std[0, 0])
        feat = thumb.astype(np.float32)
        feat -= mean
        feat *= 1.0 / (std + 2.0)
        flat = std < tune.flat_std
        slot = t % len(self.ring)
        prev = (t - 1) % len(self.ring)
        self.ring[slot] = feat
        self.ring_flat[slot] = flat
        if t == 0 or flat or self.ring_flat[prev]:
            d = 0.0
        else:
            d = float(cv2.norm(feat, self.ring[prev], cv2.NORM_L1)) / feat.size
        self.diff.append(d)
        self.flat.append(flat)
        # Exposure: mid-grey mean and real contrast score 1; black, blown-out or flat frames score 0.
        self.exposure.append(max(0.0, 1.0 - abs(mean - 120.0) / 120.0) * min(1.0, std / 40.0))
        if t % tune.sharp_every == 0:
            lap = cv2.Laplacian(luma[:: self.sharp_step, :: self.sharp_step], cv2.CV_16S)
            self.sharp.append(float(cv2.meanStdDev(lap)[1][0, 0]))
        else:
            self.sharp.append(-1.0)
        self._track_flat_run(t, flat, feat)
        self.n += 1
        c = t - tune.interrupt_frames
        if c >= 1 and self.diff[c] >= tune.cut_min:
            self._check_interruption(c, t)

    def _track_flat_run(self, t: int, flat: bool, feat: np.ndarray) -> None:
        if flat:
            if self._flat_start < 0:
                self._flat_start = t
            return
        if self._flat_start >= 0:
            if t - self._flat_start >= self.t.flat_shot_frames:
                self.fades += [self._flat_start, t]
            elif self._before_flat is not None:
                change = float(cv2.norm(feat, self._before_flat, cv2.NORM_L1)) / feat.size
                if change >= self.t.fade_min:
                    self.fades.append((self._flat_start + t) // 2)
        self._flat_start = -1
        self._before_flat = feat.copy()

    def _check_interruption(self, c: int, last: int) -> None:
        """Does any frame in [c-K, c-1] look like any frame in [c, last]? Then c starts a flash, not a shot."""
        k, size = self.t.interrupt_frames, len(self.ring)
        before = [i for i in range(max(0, c - k), c) if not self.ring_flat[i % size] and last - i < size]
        after = [i for i in range(c, last + 1) if not self.ring_flat[i % size]]
        if not before or not after:
            return
        b = self.ring[[i % size for i in before]].reshape(len(before), 1, -1)
        a = self.ring[[i % size for i in after]].reshape(1, len(after), -1)
        closest = float(np.abs(b - a).mean(axis=2).min())
        if closest < self.t.interrupt_ratio * self.diff[c]:
            self.interrupted.add(c)

    # -- after the last frame ---------------------------------------------------------------------
    def finish(self) -> list[int]:
        tune, n = self.t, self.n
        for c in range(max(1, n - tune.interrupt_frames), n):  # the tail never got its full look-ahead
            if self.diff[c] >= tune.cut_min:
                self._check_interruption(c, n - 1)
        if self._flat_start >= 0 and n - self._flat_start >= tune.flat_shot_frames:
            self.fades.append(self._flat_start)  # a long blank tail is a shot of its own
        diff = np.frombuffer(self.diff, np.float32) if n else np.zeros(0, np.float32)
        cuts: list[tuple[int, float]] = []
        for c in np.flatnonzero(diff >= tune.cut_min):
            c = int(c)
            if c == 0 or c in self.interrupted:
                continue
            w = tune.window
            left, right = diff[max(0, c - w):c - 1], diff[c + 2:c + w + 1]  # skip direct neighbours
            sides = [float(np.median(side)) for side in (left, right) if len(side)] or [0.0]
            if diff[c] >= max(sides) + tune.cut_over_baseline and diff[c] >= tune.cut_ratio * min(sides):
                cuts.append((c, float(diff[c])))
        cuts += [(f, tune.fade_min) for f in self.fades]
        kept: list[tuple[int, float]] = []
        for c, strength in sorted(cuts):  # at most one cut per min_shot_frames: the stronger wins
            if kept and c - kept[-1][0] < tune.min_shot_frames:
                if strength > kept[-1][1]:
                    kept[-1] = (c, strength)
                continue
            kept.append((c, strength))
        return [c for c, _ in kept if 0 < c < n]

    def shots(self, cuts: list[int]) -> list[Shot]:
        """Shots between cuts, each with its best frame and a score from sharpness, exposure and stillness."""
        bounds = [0, *cuts, self.n]
        diff = np.frombuffer(self.diff, np.float32)
        sharp = np.frombuffer(self.sharp, np.float32)
        expo = np.frombuffer(self.exposure, np.float32)
        out = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            if end <= start:
                continue
            margin = (end - start) // 10  # stay clear of the transitions
            idx = np.arange(start + margin, max(start + margin + 1, end - margin))
            sampled = idx[sharp[idx] >= 0]
            if len(sampled) == 0:
                sampled = idx
            s = np.clip(sharp[sampled], 0, None)
            motion = diff[np.clip(sampled, 1, None)] if self.n > 1 else np.zeros(len(sampled), np.float32)
            sharp_score = s / (s + 10.0)  # Laplacian std of ~10 (of 255) is soft, 40+ is crisp
            still = np.exp(-motion / 0.15)
            frame_quality = sharp_score * (0.25 + expo[sampled]) * (0.5 + still)
            key = int(sampled[int(np.argmax(frame_quality))])
            score = 0.45 * float(np.median(sharp_score)) + 0.35 * float(np.mean(expo[sampled])) + 0.2 * float(np.median(still))
            out.append(Shot(start, end, key, round(min(1.0, max(0.0, score)), 3)))
        return out
