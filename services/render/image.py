"""Still-image renditions: one reduced decode, each rendition shrunk from the previous one.

Order: presets are made largest first, so each `contain` rendition is resized from the one
before it (never from the original again) and `cover`/`smart` crops are cut from the
smallest full frame that is still big enough. Only the decoded frame and the current
rendition are ever held at full size; the source array is dropped after the first shrink.
Encoding runs on a small thread pool while the chain goes on: Pillow releases the GIL
inside the WebP and AVIF encoders and OpenCV inside its resizes, so both cores work.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..media.budget import Budget
from ..media.orientation import TRANSPOSED, upright_array
from . import crop
from .colour import convert_profile
from .decode import decode
from .formats import FORMATS, encode, to_pillow
from .presets import Preset
from .resize import LANCZOS_BELOW, cover_scale, fit_size, premultiplied_shrink, shrink_banded, shrink_owned, shrink_rows


@dataclass(frozen=True)
class Step:
    preset: Preset
    size: tuple[int, int]  # output (width, height)
    scale: float  # relative to the upright original


@dataclass
class Rendition:
    preset: str
    format: str
    size: tuple[int, int]
    data: bytes
    extra: dict = field(default_factory=dict)  # e.g. animated, frames


def plan(width: int, height: int, presets: tuple[Preset, ...]) -> tuple[list[Step], list[dict]]:
    """The renditions to make, largest first, and the presets that got no rendition of their own.

    Never enlarged (sharp's `withoutEnlargement`, imgproxy's default): a `contain` preset larger
    than the source gives the source's own size; a crop preset larger than the source gives the
    largest window of the preset's shape the source holds, at scale 1. Presets that come out as
    the same picture (same size; a crop that is the whole frame counts as the full frame)
    collapse into one rendition, made once in every format any of them lists and named after
    the smallest of them; the others are listed in `skipped` with `same_as` naming it."""
    groups: dict[tuple, list[tuple[Preset, tuple[int, int], float]]] = {}
    for p in presets:
        if p.crops:
            s = cover_scale(width, height, p.box)
            size = p.box
            if s > 1:  # the source is smaller than the box on some side: the largest window of its shape, unscaled
                k = min(width / p.box[0], height / p.box[1])
                s, size = 1.0, (max(1, round(p.box[0] * k)), max(1, round(p.box[1] * k)))
        else:
            size, s = fit_size(width, height, p.box)
            if s > 1:
                size, s = (width, height), 1.0
        full = not p.crops or fit_size(width, height, size)[0] == size
        groups.setdefault(("full", size) if full else (p.fit, size), []).append((p, size, s))
    steps, skipped = [], []
    for members in groups.values():
        # The kept name: a full-frame preset over a crop, then the smallest box (the closest to what is made).
        keep, size, s = min(members, key=lambda m: (m[0].crops, m[0].box[0] * m[0].box[1]))
        formats = dict(keep.formats)
        for p, _, _ in members:
            formats = formats | {f: q for f, q in p.formats.items() if f not in formats}
        steps.append(Step(Preset(keep.name, keep.box, keep.fit, formats), size, s))
        for p, _, _ in members:
            if p is not keep:
                skipped.append({"preset": p.name, "same_as": keep.name,
                                "reason": f"same {size[0]}x{size[1]} rendition as {keep.name}: "
                                          f"the source is {width}x{height} and is never upscaled"})
    order = {p.name: i for i, p in enumerate(presets)}
    steps.sort(key=lambda st: (-st.scale, st.preset.crops, order[st.preset.name]))
    skipped.sort(key=lambda sk: order[sk["preset"]])
    return steps, skipped


def encode_threads(configured: int) -> int:
    return configured if configured > 0 else max(1, min(4, os.cpu_count() or 1))


def cut(frame: np.ndarray, step: Step, upright: tuple[int, int], analysis: dict, saliency) -> np.ndarray:
    """A `cover`/`smart` rendition cut from `frame` (any scale of the upright original)."""
    fh, fw = frame.shape[:2]
    k = fw / upright[0]  # frame pixels per original pixel
    win = (step.size[0] / step.scale * k, step.size[1] / step.scale * k)
    focus = crop.attention_focus(analysis, (fw, fh)) if step.preset.fit == "smart" else None
    sal = saliency() if step.preset.fit == "smart" and focus is None else None
    x0, y0, x1, y1 = crop.window((fw, fh), win, focus, sal)
    return premultiplied_shrink(frame[y0:y1, x0:x1], step.size)


Chain = Iterator[tuple[Step, np.ndarray]]


def frames(raw: bytes, analysis: dict, presets: tuple[Preset, ...], max_pixels: int,
           budget: Budget | None = None) -> tuple[Chain, list[dict]]:
    """Pixels of every rendition (largest first) and the skipped presets. Nothing is encoded here."""
    steps, skipped = plan(analysis["width"], analysis["height"], presets)
    return _chain(raw, analysis, presets, steps, max_pixels=max_pixels, budget=budget or Budget.unlimited()), skipped


def _chain(raw, analysis, presets, steps, *, max_pixels: int, budget: Budget) -> Iterator[tuple[Step, np.ndarray]]:
    if not steps:
        return
    W, H = analysis["width"], analysis["height"]
    first = (max(1, round(W * steps[0].scale)), max(1, round(H * steps[0].scale)))
    dec = decode(raw, max_pixels, first)
    if dec.upright != (W, H):  # analysis and decoder disagree: trust the decoder
        W, H = dec.upright
        steps, _ = plan(W, H, presets)
        if not steps:
            return
        first = (max(1, round(W * steps[0].scale)), max(1, round(H * steps[0].scale)))
    stored = (first[1], first[0]) if dec.orientation in TRANSPOSED else first
    if dec.image is not None and dec.image.mode == "RGB" and min(stored[0] / dec.image.width, stored[1] / dec.image.height) > 0.5:
        frame, dec.image = shrink_banded(dec.image, stored), None
    elif dec.image is not None:  # past 2x, or RGBA: box-averaged band by band, never copied whole
        frame, dec.image = shrink_image(dec.image, stored), None
    elif dec.pixels is None:
        raise AssertionError("decode returned neither an image nor pixels")
    elif dec.pixels.shape[2] == 4 and dec.pixels.shape[0] * dec.pixels.shape[1] > LANCZOS_BELOW:
        frame = premultiplied_shrink(dec.pixels, stored)
        dec.pixels = None
    else:  # the full decode is the biggest thing we hold: freed as soon as it is resampled
        holder, dec.pixels = [dec.pixels], None
        frame = shrink_owned(holder, stored)
    frame = upright_array(frame, dec.orientation)
    if dec.icc:  # fast JPEG path: colour-convert the (smaller) first frame, not the full decode
        frame = np.asarray(convert_profile(Image.fromarray(frame), dec.icc))
    sal_cache: list[np.ndarray] = []

    def saliency() -> np.ndarray:
        if not sal_cache:
            sal_cache.append(crop.saliency_map(frame))
        return sal_cache[0]

    for step in steps:
        budget.check(f"making rendition {step.preset.name}")
        if step.preset.crops:
            yield step, cut(frame, step, (W, H), analysis, saliency)
        else:
            frame = premultiplied_shrink(frame, step.size)
            yield step, frame


def _opaque(im: Image.Image, rows: int = 256) -> bool:
    """Alpha all 255, read band by band (stops at the first transparent band; no whole-image copy)."""
    for r0 in range(0, im.height, rows):
        if np.asarray(im.crop((0, r0, im.width, min(im.height, r0 + rows))).getchannel("A")).min() < 255:
            return False
    return True


def shrink_image(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A decoded Pillow RGB/RGBA image shrunk band by band (resize.shrink_rows): RGBA whose alpha
    is all opaque comes out RGB."""
    channels = 4 if im.mode == "RGBA" and not _opaque(im) else 3

    def rows(r0: int, r1: int) -> np.ndarray:
        band = im.crop((0, r0, im.width, r1))
        return np.asarray(band.convert("RGB") if band.mode != "RGB" and channels == 3 else band)

    return shrink_rows(rows, im.width, im.height, channels, size)


ENCODE_PIXELS_AT_ONCE = 10_000_000  # output pixels in the encoders at once: a 3840 px rendition encodes alone


class EncodeGate:
    """Encoders hold several times their image's size (WebP ~80 MB for 3840x2560): at most
    ENCODE_PIXELS_AT_ONCE output pixels are being encoded at a time, one step always may.
    Measured on the 24 MP bench photo: peak 232 MB with two free encode threads, 145 MB with one."""

    def __init__(self, limit: int = ENCODE_PIXELS_AT_ONCE):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int):
        with self.cond:
            while self.used and self.used + pixels > self.limit:
                self.cond.wait()
            self.used += pixels
        try:
            yield
        finally:
            with self.cond:
                self.used -= pixels
                self.cond.notify_all()


def encode_step(step: Step, pixels: list[np.ndarray], encoders: dict, background: tuple[int, int, int],
                gate: EncodeGate | None = None) -> list[Rendition]:
    if gate is not None:
        with gate.hold(step.size[0] * step.size[1]):
            return _encode_step(step, pixels, encoders, background)
    return _encode_step(step, pixels, encoders, background)


def _encode_step(step: Step, pixels: list[np.ndarray], encoders: dict, background: tuple[int, int, int]) -> list[Rendition]:
    """Every format of one rendition, in order, on one thread (a Pillow image is not shared across threads).

    `pixels` holds the only reference to the rendition's array and is emptied here, so the array
    is freed as soon as its Pillow copy exists: for a 3840 px rendition that is 29 MB less
    held while the WebP encoder needs its own ~80 MB."""
    arr = pixels.pop()
    alpha = arr.shape[2] == 4
    ims: dict[bool, Image.Image] = {}  # keyed by "keeps alpha": JPEG gets a flattened copy
    for fmt in step.preset.formats:
        key = alpha and FORMATS[fmt].alpha
        if key not in ims:
            ims[key] = to_pillow(arr, fmt, background)
    del arr
    out = []
    for fmt, quality in step.preset.formats.items():
        im = ims[alpha and FORMATS[fmt].alpha]
        out.append(Rendition(step.preset.name, fmt, im.size, encode(im, fmt, quality, encoders.get(fmt, {}))))
    return out


def render_image(raw: bytes, analysis: dict, presets: tuple[Preset, ...], *, encoders: dict, max_pixels: int,
                 background: tuple[int, int, int], threads: int = 0,
                 budget: Budget | None = None) -> tuple[list[Rendition], list[dict]]:
    chain, skipped = frames(raw, analysis, presets, max_pixels, budget)
    with ThreadPoolExecutor(encode_threads(threads), thread_name_prefix="encode") as pool:
        gate = EncodeGate()
        futures = [pool.submit(encode_step, step, [arr], encoders, background, gate) for step, arr in chain]
        renditions = [r for f in futures for r in f.result()]
    return renditions, skipped
