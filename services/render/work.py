"""One render job's media work, as it runs in the bounded child (services/media/sandbox.py).

RenderOptions is built from Settings and the presets catalogue once per service; the child
gets it with the bytes and returns renditions for the stage to store (videos: video_stage.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..media.budget import Budget
from ..media.video import VideoLimits
from .animated import is_animated, render_animated
from .image import Rendition, render_image
from .presets import Catalogue


@dataclass(frozen=True)
class RenderOptions:
    catalogue: Catalogue
    max_image_pixels: int
    flatten_background: tuple[int, int, int]
    encode_threads: int
    animation_max_frames: int
    animation_max_pixels: int
    animation_max_decode_pixels: int
    storyboard_tile_width: int
    storyboard_columns: int
    storyboard_interval_seconds: float
    storyboard_max_tiles: int
    video_max_stills: int
    video_limits: VideoLimits
    hls_segment_seconds: float
    video_hdr: str

    @classmethod
    def build(cls, settings, catalogue: Catalogue) -> RenderOptions:
        s = settings
        return cls(catalogue, s.max_image_pixels, s.flatten_background, s.render_encode_threads, s.animation_max_frames,
                   s.animation_max_pixels, s.animation_max_decode_pixels, s.storyboard_tile_width, s.storyboard_columns,
                   s.storyboard_interval_seconds, s.storyboard_max_tiles, s.video_max_stills,
                   VideoLimits(s.max_video_seconds, s.max_video_frames, s.max_video_frame_pixels), s.hls_segment_seconds,
                   s.video_hdr)


@dataclass
class RenderOutput:
    renditions: list[Rendition]
    skipped: list[dict] = field(default_factory=list)


def render_media(raw: bytes, *, kind: str, suffix: str, analysis: dict, opts: RenderOptions, budget: Budget) -> RenderOutput:
    """An image's renditions from its bytes (videos: services/render/video_stage.py)."""
    del kind, suffix  # images only; the format is recognised from the bytes
    cat = opts.catalogue
    if is_animated(raw, opts.max_image_pixels):
        outputs, skipped = render_animated(raw, analysis, cat.image_presets, encoders=cat.encoders,
                                           max_pixels=opts.max_image_pixels, background=opts.flatten_background,
                                           poster=cat.animated_poster, max_frames=opts.animation_max_frames,
                                           max_anim_pixels=opts.animation_max_pixels, threads=opts.encode_threads,
                                           max_decode_pixels=opts.animation_max_decode_pixels, budget=budget)
    else:
        outputs, skipped = render_image(raw, analysis, cat.image_presets, encoders=cat.encoders, max_pixels=opts.max_image_pixels,
                                        background=opts.flatten_background, threads=opts.encode_threads, budget=budget)
    return RenderOutput(outputs, skipped)
