"""Animated GIF / WebP / APNG / AVIF: animated WebP renditions plus static ones and a poster.

The static pipeline (image.py) renders the first frame in every preset and format; for
each preset that lists WebP, that WebP is replaced by an animated one when the frames fit
the budget (ANIMATION_MAX_FRAMES, ANIMATION_MAX_PIXELS summed over the animated
renditions, smallest first: they are all held in memory until encoded). A JPEG poster of
the first frame at the largest size made is added. Over budget, WebP stays static and
the reason is recorded with the skipped presets.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..common.decoding import decoding
from ..common.imaging import ANIMATED_FORMATS, describe, frame_count, frames, open_image
from ..common.orientation import orientation, upright_array
from . import crop
from .colour import SRGB_PROFILE, normalise
from .formats import encode, to_pillow
from .image import Rendition, Step, cut, plan, render_image
from .presets import Preset
from .resize import premultiplied_shrink


def is_animated(raw: bytes, max_pixels: int) -> bool:
    im = open_image(raw, max_pixels)
    return im.format in ANIMATED_FORMATS and frame_count(im) > 1


def _animated_steps(steps: list[Step], n: int, max_frames: int, max_pixels: int) -> tuple[list[Step], list[dict]]:
    chosen, notes, budget = [], [], max_pixels
    for st in sorted((s for s in steps if "webp" in s.preset.formats), key=lambda s: s.size[0] * s.size[1]):
        cost = n * st.size[0] * st.size[1]
        if n > max_frames:
            why = f"{n} frames over ANIMATION_MAX_FRAMES={max_frames}: webp is static"
            notes.append({"preset": st.preset.name, "reason": why})
        elif cost > budget:
            why = f"animation over ANIMATION_MAX_PIXELS={max_pixels}: webp is static"
            notes.append({"preset": st.preset.name, "reason": why})
        else:
            budget -= cost
            chosen.append(st)
    return chosen, notes


def render_animated(raw: bytes, analysis: dict, presets: tuple[Preset, ...], encoders: dict, max_pixels: int,
                    background: tuple[int, int, int], poster: tuple[str, str, int], max_frames: int,
                    max_anim_pixels: int, threads: int = 0) -> tuple[list[Rendition], list[dict]]:
    renditions, skipped = render_image(raw, analysis, presets, encoders, max_pixels, background, threads)
    steps, _ = plan(analysis["width"], analysis["height"], presets)
    im = open_image(raw, max_pixels)
    n = frame_count(im)
    anim, notes = _animated_steps(steps, n, max_frames, max_anim_pixels)
    skipped += notes
    with decoding(describe(im)):
        o = orientation(im)
    upright = (analysis["width"], analysis["height"])
    out_frames: dict[str, list[Image.Image]] = {st.preset.name: [] for st in anim}
    durations, first, sal = [], None, []
    loop = im.info.get("loop", 0)
    for i, frame in enumerate(frames(im)):
        durations.append(int(frame.info.get("duration", 100)) or 100)
        with decoding(f"frame {i + 1} of {describe(im)}"):
            arr = upright_array(np.asarray(normalise(frame.convert("RGBA"))), o)
        if arr.shape[2] == 3:
            arr = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
        if first is None:
            first = arr
            sal.append(crop.saliency_map(first))  # one crop window for every frame: no jitter
        for st in anim:
            px = cut(arr, st, upright, analysis, lambda: sal[0]) if st.preset.crops else premultiplied_shrink(arr, st.size)
            out_frames[st.preset.name].append(Image.fromarray(px, "RGBA"))
    for st in anim:
        fr = out_frames.pop(st.preset.name)
        buf = io.BytesIO()
        q = st.preset.formats["webp"]
        fr[0].save(buf, "WEBP", save_all=True, append_images=fr[1:], duration=durations, loop=loop, quality=q,
                   icc_profile=SRGB_PROFILE, **encoders.get("webp", {}))
        renditions = [r for r in renditions if not (r.preset == st.preset.name and r.format == "webp")]
        renditions.append(Rendition(st.preset.name, "webp", st.size, buf.getvalue(), {"animated": True, "frames": n}))
    name, fmt, quality = poster
    if first is not None:
        size = steps[0].size if steps and not steps[0].preset.crops else (first.shape[1], first.shape[0])
        px = premultiplied_shrink(first, size)
        renditions.append(Rendition(name, fmt, size, encode(to_pillow(px, fmt, background), fmt, quality, encoders.get(fmt, {})),
                                    {"poster": True}))
    return renditions, skipped
