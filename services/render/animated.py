"""Animated GIF / WebP / APNG / AVIF: animated WebP renditions plus static ones and a poster.

The static pipeline (image.py) renders the first frame in every preset and format; for
each preset that lists WebP, that WebP is replaced by an animated one when the frames fit
the budget (ANIMATION_MAX_FRAMES, ANIMATION_MAX_PIXELS summed over the animated
renditions, smallest first: they are all held in memory until encoded; and
ANIMATION_MAX_DECODE_PIXELS, frames x canvas, the decoding work). A JPEG poster of the
first frame at the largest size made is added. Over budget, WebP stays static, the reason
is recorded with the skipped presets, and no frame past the first is ever decoded.
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ..media.budget import Budget
from ..media.decoding import decoding
from ..media.imaging import ANIMATED_FORMATS, describe, frame_count, frames, load_checked, open_image
from ..media.orientation import left_to_apply, upright_array
from ..media.precheck import facts_of
from . import crop
from .colour import SRGB_PROFILE, normalise
from .formats import encode, to_pillow
from .image import EncodeGate, Rendition, Step, cut, encode_step, encode_threads, plan
from .image import frames as rendition_pixels
from .presets import Preset
from .resize import premultiplied_shrink

HEADER_FORMATS = ("gif", "webp", "png")  # whose frames precheck counts from the headers


def is_animated(raw: bytes, max_pixels: int) -> bool:
    """GIF, WebP and APNG from their headers (services/media/precheck.py): no frame is walked."""
    facts = facts_of(raw)
    if facts.format in HEADER_FORMATS:
        return facts.frames > 1
    im = open_image(raw, max_pixels)  # animated AVIF: its container says how many frames
    return im.format in ANIMATED_FORMATS and frame_count(im) > 1


def _frame_count(raw: bytes, max_pixels: int) -> tuple[int, int]:
    """(frames, canvas pixels)."""
    facts = facts_of(raw)
    if facts.format in HEADER_FORMATS:
        return facts.frames, facts.width * facts.height
    im = open_image(raw, max_pixels)
    return frame_count(im), im.width * im.height


def _animated_steps(steps: list[Step], n: int, canvas: int, *, max_frames: int, max_pixels: int,
                    max_decode_pixels: int) -> tuple[list[Step], list[dict]]:
    chosen, notes, budget = [], [], max_pixels
    for st in sorted((s for s in steps if "webp" in s.preset.formats), key=lambda s: s.size[0] * s.size[1]):
        cost = n * st.size[0] * st.size[1]
        if n > max_frames:
            why = f"{n} frames over ANIMATION_MAX_FRAMES={max_frames}: webp is static"
            notes.append({"preset": st.preset.name, "reason": why})
        elif n * canvas > max_decode_pixels:
            why = f"{n} frames of {canvas} pixels over ANIMATION_MAX_DECODE_PIXELS={max_decode_pixels}: webp is static"
            notes.append({"preset": st.preset.name, "reason": why})
        elif cost > budget:
            why = f"animation over ANIMATION_MAX_PIXELS={max_pixels}: webp is static"
            notes.append({"preset": st.preset.name, "reason": why})
        else:
            budget -= cost
            chosen.append(st)
    return chosen, notes


def _static(raw, analysis, presets, *, encoders, max_pixels, background, threads,
            budget) -> tuple[list[Rendition], list[dict], np.ndarray | None]:
    """render_image's renditions of the first frame, keeping the largest full-frame one's pixels for the poster."""
    chain, skipped = rendition_pixels(raw, analysis, presets, max_pixels, budget)
    largest = None
    with ThreadPoolExecutor(encode_threads(threads), thread_name_prefix="encode") as pool:
        futures, gate = [], EncodeGate()
        for step, arr in chain:
            if largest is None and not step.preset.crops:
                largest = arr
            futures.append(pool.submit(encode_step, step, [arr], encoders, background, gate))
        renditions = [r for f in futures for r in f.result()]
    return renditions, skipped, largest


def render_animated(raw: bytes, analysis: dict, presets: tuple[Preset, ...], *, encoders: dict, max_pixels: int,
                    background: tuple[int, int, int], poster: tuple[str, str, int], max_frames: int,
                    max_anim_pixels: int, threads: int = 0, max_decode_pixels: int = 2_000_000_000,
                    budget: Budget | None = None) -> tuple[list[Rendition], list[dict]]:
    """Frames are decoded only when an animated rendition is made (under its caps); otherwise
    only the first frame is, once, for the static renditions and the poster."""
    budget = budget or Budget.unlimited()
    renditions, skipped, largest = _static(raw, analysis, presets, encoders=encoders, max_pixels=max_pixels,
                                           background=background, threads=threads, budget=budget)
    steps, _ = plan(analysis["width"], analysis["height"], presets)
    n, canvas = _frame_count(raw, max_pixels)
    anim, notes = _animated_steps(steps, n, canvas, max_frames=max_frames, max_pixels=max_anim_pixels,
                                  max_decode_pixels=max_decode_pixels)
    skipped += notes
    first = _animate(raw, analysis, anim, n, max_pixels=max_pixels, encoders=encoders, renditions=renditions,
                     budget=budget) if anim else None
    name, fmt, quality = poster
    if largest is None and first is None:  # no full-frame rendition (a source smaller than every preset)
        first = _first_frame(raw, max_pixels)
    px = largest if largest is not None else first
    assert px is not None  # _first_frame always gives one
    size = (px.shape[1], px.shape[0])
    renditions.append(Rendition(name, fmt, size, encode(to_pillow(px, fmt, background), fmt, quality, encoders.get(fmt, {})),
                                {"poster": True}))
    return renditions, skipped


def _frame_rgba(frame: Image.Image, o: int) -> np.ndarray:
    arr = upright_array(np.asarray(normalise(frame.convert("RGBA"))), o)
    if arr.shape[2] == 3:
        arr = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    return arr


def _first_frame(raw: bytes, max_pixels: int) -> np.ndarray:
    im = open_image(raw, max_pixels)
    with decoding(describe(im)):
        o = left_to_apply(im)  # read before load: Pillow turns a TIFF while loading it
    load_checked(im)
    with decoding(describe(im)):
        return _frame_rgba(im, o)


def _animate(raw, analysis, anim: list[Step], n: int, *, max_pixels: int, encoders: dict, renditions: list[Rendition],
             budget: Budget) -> np.ndarray | None:
    """Every frame, once, into each animated rendition; replaces their static WebP. Returns the first frame."""
    im = open_image(raw, max_pixels)
    with decoding(describe(im)):
        o = left_to_apply(im)
    upright = (analysis["width"], analysis["height"])
    out_frames: dict[str, list[Image.Image]] = {st.preset.name: [] for st in anim}
    durations, first, sal = [], None, []
    loop = im.info.get("loop", 0)
    for i, frame in enumerate(frames(im)):  # each seek and load behind the decoder guard
        if i % 10 == 0:
            budget.check(f"decoding animation frame {i}")
        durations.append(int(frame.info.get("duration", 100)) or 100)
        with decoding(f"frame {i + 1} of {describe(im)}"):
            arr = _frame_rgba(frame, o)
        if first is None:
            first = arr
            sal.append(crop.saliency_map(first))  # one crop window for every frame: no jitter
        for st in anim:
            px = cut(arr, st, upright, analysis, lambda: sal[0]) if st.preset.crops else premultiplied_shrink(arr, st.size)
            out_frames[st.preset.name].append(Image.fromarray(px, "RGBA"))
    for st in anim:
        budget.check(f"encoding animated {st.preset.name}")
        fr = out_frames.pop(st.preset.name)
        buf = io.BytesIO()
        q = st.preset.formats["webp"]
        fr[0].save(buf, "WEBP", save_all=True, append_images=fr[1:], duration=durations, loop=loop, quality=q,
                   icc_profile=SRGB_PROFILE, **encoders.get("webp", {}))
        renditions[:] = [r for r in renditions if not (r.preset == st.preset.name and r.format == "webp")]
        renditions.append(Rendition(st.preset.name, "webp", st.size, buf.getvalue(), {"animated": True, "frames": len(fr)}))
    return first
