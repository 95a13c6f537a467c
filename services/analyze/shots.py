"""Shots and the transitions between them, from tiny thumbnails, one pass, microseconds per frame.

Each frame becomes a 32-px-wide luma thumbnail (normalised to zero mean and unit contrast, so
flashes, fades and lighting changes do not move it) and two chroma thumbnails (raw, so a change
of colour alone shows). The distance of two frames is the larger of their luma and chroma
distances, both in units where unrelated pictures score ~1.
- Hard cut at t: d(t-1, t) is high, stands out from its neighbourhood (pans and zooms raise the
  whole neighbourhood, a cut is a lone spike: it must clear the busier side by a margin and be
  several times the calmer side, so a cut next to a whip pan still counts), and no frame shortly
  before resembles a frame shortly after (a flash or a passing occluder comes back; a cut does not).
- Fade: a run of blank frames (no structure, or a uniform black/white card carrying at most a
  small logo, caption or noise) between two different contents; the shot starts in the middle of
  the run, and the transition spans the ramps on both sides (frames moving monotonically towards
  the card, then away from it). A run longer than a second is a shot of its own (a card): it
  begins with the fade out, the next shot with the fade in.
- Dissolve: a frame that is, on the raw thumbnails, the linear mix of frames k before and k
  after (also at the quarter points) while those two differ in content: a pan, a zoom or shake is
  no such mix, a lighting ramp has no change of content. Tested for half-widths of 1/4 to 1 s.
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Tuning:
    thumb_width: int = 32
    cut_min: float = 0.5  # distance (units of contrast) a hard cut must reach
    cut_over_baseline: float = 0.3  # ... above the median of the busier side (unrelated frames score ~1.13)
    cut_ratio: float = 2.0  # ... and this many times the median of the calmer side
    busy_ratio: float = 1.35  # ... or, beside a whip pan, this many times the busier side's median
    window: int = 12  # neighbourhood, frames each side
    interrupt_frames: int = 6  # a flash or occlusion shorter than this is not a cut
    interrupt_ratio: float = 0.5  # "comes back": a before/after pair closer than this share of the spike
    chroma_unit: float = 24.0  # mean |dU|+|dV| (0-255 levels) that counts as 1, like unrelated luma
    flat_std: float = 2.5  # luma std (0-255) of the thumbnail below which a frame has no structure
    card_share: float = 0.9  # ... or this share of it within card_tolerance of its median, on a dark or bright card
    card_tolerance: int = 6  # (a star field has ~0.8 of its thumbnail so near its median, a card with a logo ~0.99)
    card_dark: int = 48
    card_bright: int = 208
    fade_min: float = 0.5  # contents on both sides of a blank run must differ this much
    ramp_step: float = 0.4  # a fade ramp moves at least this many levels per frame towards/away from the card
    ramp_in_seconds: float = 2.0  # a fade in is followed this long at most
    min_shot_frames: int = 6
    dissolve_seconds: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # half-widths tested
    dissolve_content: float = 0.8  # the two ends must differ this much (normalised luma distance)
    dissolve_linearity: float = 0.2  # residual from the linear mix, as a share of the ends' raw distance
    dissolve_raw_min: float = 8.0  # ... and the ends must differ by this many levels (raw)
    sharp_every: int = 8  # sharpness sampled on every n-th frame (it only feeds the shot score)


@dataclass(frozen=True)
class Transition:
    kind: str  # cut | fade | dissolve
    start: int  # first frame of the transition
    end: int  # first frame after it (== start for a cut)
    via: str | None = None  # fade: black | white


@dataclass
class Shot:
    start: int  # first frame
    end: int  # one past the last frame
    keyframe: int
    visual_score: float
    transition: Transition | None = None  # how it begins; None for the first shot (nothing comes before it)


@dataclass
class _Run:
    """A run of blank frames, then the ramp into the next content (tracked as frames arrive)."""
    start: int
    end: int = -1
    card: np.ndarray | None = None
    out_start: int = -1
    in_end: int = -1
    before: np.ndarray | None = None  # features of the content before the fade out, and after the fade in
    after: np.ndarray | None = None
    in_dists: list[float] = field(default_factory=list)  # distances to the card along the ramp in
    via: str = "black"


class CutDetector:
    """Feed frames' Y (and U, V) planes in order with `push`; `finish` returns the transitions."""

    def __init__(self, width: int, height: int, tuning: Tuning = Tuning(), fps: float = 24.0):
        self.t = tuning
        self.fps = fps
        # Stride into the frame first (a view: only every step-th row is read), then one integer-factor area
        # resize: ~25 samples per thumbnail cell, ~30 us per plane at 720p (every 4th row: ~150 us).
        self.step = max(1, min(width, height) // 90)
        sw, sh = width // self.step, height // self.step
        self.block = max(1, sw // tuning.thumb_width)
        self.tw, self.th = max(1, sw // self.block), max(1, sh // self.block)
        self.crop = (self.th * self.block * self.step, self.tw * self.block * self.step)
        self.sharp_step = max(1, min(width, height) // 360)
        self.ks = sorted({max(2, round(fps * s)) for s in tuning.dissolve_seconds})
        self.kmax = self.ks[-1]
        self.flat_shot_frames = max(12, round(fps))
        size = max(2 * tuning.interrupt_frames + 2, 2 * self.kmax + 2)
        n = self.tw * self.th
        self.ring_norm = np.zeros((size, n), np.float32)
        self.ring_chroma = np.zeros((size, 2 * n), np.float32)
        self.ring_raw = np.zeros((size, 3 * n), np.float32)  # luma and chroma levels, for mixes
        self.ring_flat = [True] * size
        self.n = 0
        self.diff = array("f")  # d(t-1, t), 0 where either frame is flat
        self.flat = array("b")
        self.exposure = array("f")
        self.sharp = array("f")  # -1 where not sampled
        self.interrupted: set[int] = set()
        self.fades: list[_Run] = []
        self.dissolves: list[tuple[int, int, float, int, int]] = []  # (centre, k, linearity, start, end)
        self._run: _Run | None = None  # blank run in progress, or its ramp-in being tracked
        self._sharp_tick: int | None = None

    # -- per frame -------------------------------------------------------------------------------
    def _thumb(self, plane: np.ndarray, step: int, crop: tuple[int, int]) -> np.ndarray:
        small = plane[:crop[0]:step, :crop[1]:step]
        want = (self.th * self.block, self.tw * self.block)
        if small.shape != want:  # chroma subsampling, or a frame size change mid-stream
            small = cv2.resize(plane, (want[1], want[0]), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (self.tw, self.th), interpolation=cv2.INTER_AREA)

    def push(self, luma: np.ndarray, u: np.ndarray | None = None, v: np.ndarray | None = None,
             time: float | None = None) -> None:
        """`time`: the frame's presentation time; with it, sharpness is sampled on a grid of the clock (every
        sharp_every / fps seconds) rather than on every n-th frame pushed, so a pass that starts mid-video
        (a segment) samples the same frames as one over the whole file."""
        t, tune = self.n, self.t
        thumb = self._thumb(luma, self.step, self.crop)
        means, stds = cv2.meanStdDev(thumb)
        mean, std = float(means[0, 0]), float(stds[0, 0])
        flat = bool(std < tune.flat_std or self._is_card(thumb, mean))
        feat = thumb.astype(np.float32).ravel()
        raw_luma = feat.copy()
        feat -= mean
        feat *= 1.0 / (std + 2.0)
        if u is not None and v is not None:
            cs = max(1, self.step * u.shape[1] // luma.shape[1])  # chroma planes may be subsampled
            chroma = np.concatenate([cv2.resize(p[::cs, ::cs], (self.tw, self.th), interpolation=cv2.INTER_AREA).ravel()
                                     for p in (u, v)]).astype(np.float32) - 128.0
        else:
            chroma = np.zeros(2 * feat.size, np.float32)
        size = len(self.ring_flat)
        slot, prev = t % size, (t - 1) % size
        self.ring_norm[slot] = feat
        self.ring_chroma[slot] = chroma
        self.ring_raw[slot, :feat.size] = raw_luma
        self.ring_raw[slot, feat.size:] = chroma
        self.ring_flat[slot] = flat
        self.diff.append(0.0 if t == 0 or flat or self.ring_flat[prev] else self._dist(slot, prev))
        self.flat.append(flat)
        # Exposure: mid-grey mean and real contrast score 1; black, blown-out or flat frames score 0.
        self.exposure.append(max(0.0, 1.0 - abs(mean - 120.0) / 120.0) * min(1.0, std / 40.0))
        if self._sample_sharpness(t, time):
            lap = cv2.Laplacian(luma[:: self.sharp_step, :: self.sharp_step], cv2.CV_16S)
            self.sharp.append(float(cv2.meanStdDev(lap)[1][0, 0]))
        else:
            self.sharp.append(-1.0)
        self.n += 1
        self._track_blank(t, flat, mean)
        c = t - tune.interrupt_frames
        if c >= 1 and self.diff[c] >= tune.cut_min:
            self._check_interruption(c, t)
        if t >= 2 * self.kmax:
            self._check_dissolve(t - self.kmax)

    def _sample_sharpness(self, t: int, time: float | None) -> bool:
        if time is None:
            return t % self.t.sharp_every == 0
        tick = math.floor(round(time * self.fps / self.t.sharp_every, 6))
        last, self._sharp_tick = self._sharp_tick, tick
        return last is None or tick != last

    def _is_card(self, thumb: np.ndarray, mean: float) -> bool:
        """A dark or bright card with at most a small logo, caption or noise on it."""
        tune = self.t
        if tune.card_dark + 40 < mean < tune.card_bright - 40:  # a card with a small logo keeps the card's mean
            return False
        med = float(np.median(thumb))
        if tune.card_dark < med < tune.card_bright:
            return False
        near = np.count_nonzero(np.abs(thumb.astype(np.int16) - int(med)) <= tune.card_tolerance)
        return bool(near >= tune.card_share * thumb.size)

    def _dist(self, i: int, j: int) -> float:
        """Distance of two ring slots: the larger of the luma (normalised) and chroma distances."""
        n = self.ring_norm.shape[1]
        luma = float(cv2.norm(self.ring_norm[i], self.ring_norm[j], cv2.NORM_L1)) / n
        chroma = float(cv2.norm(self.ring_chroma[i], self.ring_chroma[j], cv2.NORM_L1)) / n / self.t.chroma_unit
        return max(luma, chroma)

    def _card_dist(self, slot: int, card: np.ndarray) -> float:
        n = self.ring_norm.shape[1]
        return float(cv2.norm(self.ring_raw[slot, :n], card, cv2.NORM_L1)) / n

    def _track_blank(self, t: int, flat: bool, mean: float) -> None:
        size = len(self.ring_flat)
        slot = t % size
        run = self._run
        if flat:
            if run is None or run.end >= 0:
                if run is not None:
                    self._close_run(run, t)
                run = self._run = _Run(t, via="black" if mean < 128 else "white")
                run.out_start = self._ramp_out(t)
                # The content before the fade: the frame before the ramp (on the ramp, a logo on the card shows through).
                if run.out_start > 0 and not self.ring_flat[(run.out_start - 1) % size]:
                    run.before = self._features((run.out_start - 1) % size)
            run.card = self.ring_raw[slot, :self.ring_norm.shape[1]].copy()
            return
        if run is not None:
            if run.end < 0:  # first structured frame after the run: the ramp in starts here
                run.end = run.in_end = t
                assert run.card is not None  # set when the run began
                run.in_dists = [0.0, self._card_dist(slot, run.card)]
            else:
                assert run.card is not None
                d = self._card_dist(slot, run.card)
                if d > run.in_dists[-1] + self.t.ramp_step and t - run.end < self.t.ramp_in_seconds * self.fps:
                    run.in_end = t
                    run.in_dists.append(d)
                else:
                    run.after = self._features(slot)  # the content after the fade: past the ramp
                    self._close_run(run, t)

    def _ramp_out(self, t: int) -> int:
        """First frame of the fade out before a blank run starting at t (walking back in the ring): frames
        moving steadily towards the card. A first step that already covers most of the way is a cut into the card."""
        size = len(self.ring_flat)
        card = self.ring_raw[t % size, :self.ring_norm.shape[1]]
        i, dists = t, [0.0]
        while i - 1 >= 0 and t - (i - 1) < size - 1 and not self.ring_flat[(i - 1) % size]:
            d = self._card_dist((i - 1) % size, card)
            if d <= dists[-1] + self.t.ramp_step:
                break
            i = i - 1
            dists.append(d)
        return i if _is_ramp(dists) else t

    def _features(self, slot: int) -> np.ndarray:
        return np.concatenate([self.ring_norm[slot], self.ring_chroma[slot]])

    def _close_run(self, run: _Run, t: int) -> None:
        if self._run is run:
            self._run = None
        if run.end < 0:
            run.end = t
        if run.after is None and run.in_end >= run.end:  # ended by the video or by another blank run
            run.after = self._features(run.in_end % len(self.ring_flat))
        if run.in_end < run.end or not _is_ramp(run.in_dists):
            run.in_end = run.end - 1  # no ramp: the content comes back with a cut
        self.fades.append(run)

    def _check_interruption(self, c: int, last: int) -> None:
        """Does any frame in [c-K, c-1] look like any frame in [c, last]? Then c starts a flash, not a shot."""
        k, size = self.t.interrupt_frames, len(self.ring_flat)
        before = [i for i in range(max(0, c - k), c) if not self.ring_flat[i % size] and last - i < size]
        after = [i for i in range(c, last + 1) if not self.ring_flat[i % size]]
        if not before or not after:
            return
        closest = min(self._dist(b % size, a % size) for b in before for a in after)
        if closest < self.t.interrupt_ratio * self.diff[c]:
            self.interrupted.add(c)

    def _check_dissolve(self, c: int) -> None:
        size, tune = len(self.ring_flat), self.t
        raw = self.ring_raw
        best = None
        for k in self.ks:
            a, b = (c - k) % size, (c + k) % size
            if self.ring_flat[a] or self.ring_flat[b]:
                break
            n = self.ring_norm.shape[1]
            # Luma only, normalised: a lighting ramp is a perfect linear mix too, but of the same picture.
            if float(cv2.norm(self.ring_norm[a], self.ring_norm[b], cv2.NORM_L1)) / n < tune.dissolve_content:
                continue  # a long dissolve changes little over a short window: try a wider one
            ends = float(cv2.norm(raw[a], raw[b], cv2.NORM_L1)) / raw.shape[1]
            if ends < tune.dissolve_raw_min:
                continue
            worst = 0.0
            for offset, w in ((0, 0.5), (-(k // 2), 0.25), (k // 2, 0.75)):
                mix = cv2.addWeighted(raw[a], 1 - w, raw[b], w, 0)
                worst = max(worst, float(cv2.norm(raw[(c + offset) % size], mix, cv2.NORM_L1)) / raw.shape[1] / ends)
            if worst >= tune.dissolve_linearity:
                break
            best = (k, worst, a, b)
        if best is None:
            return
        k, worst, a, b = best
        # The span: where the mix coefficient (projection on the line from one end to the other) leaves 0 and reaches 1.
        line = raw[b] - raw[a]
        norm2 = float(line @ line) or 1.0
        alpha = [float((raw[(c + i) % size] - raw[a]) @ line) / norm2 for i in range(-k, k + 1)]
        start = next(i for i in range(k, -1, -1) if i == 0 or alpha[i - 1] <= 0.05) - k + c
        end = next(i for i in range(k, 2 * k + 1) if i == 2 * k or alpha[i] >= 0.95) - k + c + 1
        self.dissolves.append((c, k, worst, start, end))

    # -- after the last frame ---------------------------------------------------------------------
    def finish(self) -> list[tuple[int, Transition]]:
        """(first frame of the new shot, how it begins), in order."""
        tune, n = self.t, self.n
        for c in range(max(1, n - tune.interrupt_frames), n):  # the tail never got its full look-ahead
            if self.diff[c] >= tune.cut_min:
                self._check_interruption(c, n - 1)
        if self._run is not None:
            self._close_run(self._run, n)
        diff = np.frombuffer(self.diff, np.float32) if n else np.zeros(0, np.float32)
        found: list[tuple[int, float, Transition]] = []
        for index in np.flatnonzero(diff >= tune.cut_min):
            c = int(index)
            if c == 0 or c in self.interrupted:
                continue
            w = tune.window
            left, right = diff[max(0, c - w):c - 1], diff[c + 2:c + w + 1]  # skip direct neighbours
            sides = [float(np.median(side)) for side in (left, right) if len(side)] or [0.0]
            busy = min(max(sides) + tune.cut_over_baseline, tune.busy_ratio * max(sides))
            if diff[c] >= busy and diff[c] >= tune.cut_ratio * min(sides):
                found.append((c, float(diff[c]), Transition("cut", c, c)))
        spans: list[tuple[int, int]] = []
        for run in self.fades:
            if run.end - run.start >= self.flat_shot_frames:  # a card: a shot of its own
                if run.start > 0:
                    into = Transition("fade", run.out_start, run.start, run.via) if run.out_start < run.start else \
                        Transition("cut", run.start, run.start)
                    found.append((run.start, 9.0, into))
                if run.end < n:
                    out_of = Transition("fade", run.end, run.in_end + 1, run.via) if run.in_end >= run.end else \
                        Transition("cut", run.end, run.end)
                    found.append((run.end, 9.0, out_of))
            elif run.before is not None and run.after is not None:
                change = max(float(np.abs(run.before[:len(run.before) // 3] - run.after[:len(run.after) // 3]).mean()),
                             float(np.abs(run.before[len(run.before) // 3:] - run.after[len(run.after) // 3:]).mean())
                             / tune.chroma_unit)
                if change >= tune.fade_min:
                    found.append(((run.start + run.end) // 2, 9.0, Transition("fade", run.out_start, run.in_end + 1, run.via)))
            spans.append((run.out_start, run.in_end + 1))
        for group in _groups(self.dissolves):
            c, k, worst, start, end = max(group, key=lambda d: (d[1], -d[2]))
            if any(s - 1 <= c <= e for s, e in spans):
                continue  # a fade, already counted
            found.append((c, 5.0, Transition("dissolve", start, end)))
        kept: list[tuple[int, float, Transition]] = []
        for item in sorted(found, key=lambda f: f[0]):  # at most one per min_shot_frames: the stronger wins
            if kept and item[0] - kept[-1][0] < tune.min_shot_frames:
                if item[1] > kept[-1][1]:
                    kept[-1] = item
                continue
            kept.append(item)
        return [(c, tr) for c, _, tr in kept if 0 < c < n]

    def shots(self, transitions: list[tuple[int, Transition]]) -> list[Shot]:
        return score_shots(transitions, np.frombuffer(self.diff, np.float32), np.frombuffer(self.sharp, np.float32),
                           np.frombuffer(self.exposure, np.float32))


def score_shots(transitions: list[tuple[int, Transition]], diff: np.ndarray, sharp: np.ndarray,
                expo: np.ndarray) -> list[Shot]:
    """Shots between transitions, each with its best frame and a score from sharpness, exposure and stillness.

    From the detector's per-frame arrays (d(t-1, t), sharpness or -1 where not sampled, exposure): a merge of
    segments concatenates theirs and scores here, so a shot across a boundary gets the whole-file answer."""
    n = len(diff)
    bounds = [0, *[c for c, _ in transitions], n]
    begins: list[Transition | None] = [None, *[tr for _, tr in transitions]]
    out = []
    for start, end, tr in zip(bounds, bounds[1:], begins, strict=False):
        if end <= start:
            continue
        # Stay clear of the transitions: their blends are never a shot's best frame.
        lo = max(start + (end - start) // 10, min(tr.end if tr else start, end - 1))
        idx = np.arange(lo, max(lo + 1, end - (end - start) // 10))
        sampled = idx[sharp[idx] >= 0]
        if len(sampled) == 0:
            sampled = idx
        s = np.clip(sharp[sampled], 0, None)
        motion = diff[np.clip(sampled, 1, None)] if n > 1 else np.zeros(len(sampled), np.float32)
        sharp_score = s / (s + 10.0)  # Laplacian std of ~10 (of 255) is soft, 40+ is crisp
        still = np.exp(-motion / 0.15)
        frame_quality = sharp_score * (0.25 + expo[sampled]) * (0.5 + still)
        key = int(sampled[int(np.argmax(frame_quality))])
        score = 0.45 * float(np.median(sharp_score)) + 0.35 * float(np.mean(expo[sampled])) + 0.2 * float(np.median(still))
        out.append(Shot(start, end, key, round(min(1.0, max(0.0, score)), 3), tr))
    return out


def _is_ramp(dists: list[float]) -> bool:
    """Distances to the card from the card outwards: a fade takes several frames to cover the way, a cut one."""
    return len(dists) >= 3 and dists[1] < 0.6 * dists[-1]


def _groups(dissolves):
    """Consecutive dissolve centres (one dissolve passes the test at several centres)."""
    group: list = []
    for d in dissolves:
        if group and d[0] - group[-1][0] > 2:
            yield group
            group = []
        group.append(d)
    if group:
        yield group
