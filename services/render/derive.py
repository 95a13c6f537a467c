"""One derivative image (`/v1/img/...`): where to cut, and the render that runs in the bounded child.

Geometry (`plan`) is pure and runs in the front door too, so a request over the limits is a 400
before any child starts. Sizes are in upright source pixels; never enlarged:
- contain: the whole picture inside the box;
- cover: scaled to cover the box, then cut to it (a source smaller than the box gives the box
  clipped to the source, as imgproxy's `fill`);
- fill-down: as cover, but a source smaller than the box gives the largest window of the box's
  shape at scale 1 (imgproxy's `fill-down`; the presets' crop rule).
Where the window sits: the focus point (fractions of the upright picture), chosen by the front
door from gravity (auto = the faces' box, else analyze's attention box, else the centre).

Decoding, by what measured better (`python -m bench derivatives`, tables 2 and 2b):
- JPEG, PNG and WebP: libvips `thumbnail` from a streamed source (shrink-on-load: a JPEG decoded
  at 1/2-1/8 by the DCT, a PNG read line by line), so memory follows the output, not the source.
  The presets' Pillow/OpenCV chain was ~25 % faster on JPEG, but at a lower SSIM (0.956 against
  0.969 for a 12 MP photo at 800 px, WebP q80): not better at equal quality. Pillow decodes a PNG
  whole (over 800 MB at 100 MP) and was slower at every PNG size measured;
- everything else (TIFF, HEIC, GIF, BMP): the Pillow chain, which knows their quirks (TIFF
  orientation, HEIC bursts).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from ..common.errors import CorruptMedia, UnsupportedMedia
from ..media.budget import Budget
from ..media.rangefile import RangeSource
from .presets import Preset

LIBVIPS_TYPES = ("image/jpeg", "image/png", "image/webp")
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
AVIF_EFFORT = 2  # libvips 0-9; Pillow's speed 8 of the presets (services/render/formats.py) is about this
WEBP_EFFORT = 4  # the presets' `method` 4


@dataclass(frozen=True)
class Plan:
    scaled: tuple[int, int]  # the whole upright picture at the scale it is cut from
    window: tuple[int, int, int, int]  # x, y, width, height inside `scaled` (the whole of it for contain)

    @property
    def size(self) -> tuple[int, int]:
        return self.window[2], self.window[3]


def plan(width: int, height: int, box: tuple[int | None, int | None], fit: str,
         focus: tuple[float, float] = (0.5, 0.5)) -> Plan:
    bw, bh = box
    if fit == "contain" or bw is None or bh is None:  # one side given: the other follows the picture
        s = min(bw / width if bw else 1e9, bh / height if bh else 1e9, 1.0)
        scaled = (max(1, round(width * s)), max(1, round(height * s)))
        return Plan(scaled, (0, 0, *scaled))
    s = max(bw / width, bh / height)
    if s > 1 and fit == "fill-down":
        k = min(width / bw, height / bh)
        out = (max(1, round(bw * k)), max(1, round(bh * k)))
        scaled = (width, height)
    else:
        s = min(s, 1.0)
        scaled = (max(1, round(width * s)), max(1, round(height * s)))
        out = (min(bw, scaled[0]), min(bh, scaled[1]))
    return Plan(scaled, (*_placed(scaled, out, focus), *out))


def _placed(frame: tuple[int, int], win: tuple[int, int], focus: tuple[float, float]) -> tuple[int, int]:
    """Top-left of a window of size `win` centred on `focus` (fractions), kept inside `frame`."""
    x = round(focus[0] * frame[0] - win[0] / 2)
    y = round(focus[1] * frame[1] - win[1] / 2)
    return min(max(0, x), frame[0] - win[0]), min(max(0, y), frame[1] - win[1])


def focus_of(analysis: dict, gravity: str, point: tuple[float, float] | None) -> tuple[float, float]:
    """The focus point of a gravity, as fractions of the upright picture. auto: the box around
    every face (a window at least that big keeps each face whole), else analyze's attention box."""
    W, H = analysis.get("width") or 0, analysis.get("height") or 0
    if gravity == "focus" and point is not None:
        return point
    if gravity != "auto" or not W or not H:
        return 0.5, 0.5
    faces = analysis.get("faces") or []
    boxes = faces or ([analysis["attention"]] if analysis.get("attention") else [])
    try:
        x0 = min(float(b["x"]) for b in boxes)
        y0 = min(float(b["y"]) for b in boxes)
        x1 = max(float(b["x"]) + float(b["width"]) for b in boxes)
        y1 = max(float(b["y"]) + float(b["height"]) for b in boxes)
    except (KeyError, TypeError, ValueError):
        return 0.5, 0.5
    return ((x0 + x1) / 2 / W, (y0 + y1) / 2 / H) if boxes else (0.5, 0.5)


@dataclass(frozen=True)
class Spec:
    """What the child is asked to make: picklable, already checked against the limits."""

    content_type: str  # the original's (the job's source)
    analysis: dict  # width/height upright, faces, attention
    box: tuple[int | None, int | None]  # output pixels
    fit: str
    focus: tuple[float, float]
    format: str  # jpeg | webp | avif (auto already chosen)
    quality: int
    background: tuple[int, int, int]  # JPEG has no alpha
    max_pixels: int  # MAX_IMAGE_PIXELS
    decoder: str = "auto"  # auto (decoder_for) | libvips | pillow: tests and the bench pin one


@dataclass(frozen=True)
class Derived:
    data: bytes
    size: tuple[int, int]
    decoder: str  # libvips | pillow


def decoder_for(spec: Spec) -> str:
    if spec.decoder != "auto":
        return spec.decoder
    return "libvips" if spec.content_type in LIBVIPS_TYPES else "pillow"


def render_derivative(raw: bytes, source: RangeSource | str, spec: Spec, budget: Budget | None = None) -> Derived:
    """In the child: the original (a RangeSource read by ranges, or a path) to the encoded derivative."""
    del raw  # the source is read by ranges, never sent whole
    f = source.open() if isinstance(source, RangeSource) else open(source, "rb")
    with f:
        if decoder_for(spec) == "libvips":
            return _with_libvips(f, spec)
        (budget or Budget.unlimited()).check("reading the original")
        return _with_pillow(f.read(), spec)


def _with_libvips(f: io.BufferedIOBase, spec: Spec) -> Derived:
    import pyvips  # preloaded by ingest's forkserver (importing starts no thread: libvips makes its workers on first use)

    src = pyvips.SourceCustom()
    src.on_read(lambda size: f.read(size))
    src.on_seek(lambda offset, whence: f.seek(offset, whence))
    W, H = spec.analysis["width"], spec.analysis["height"]
    p = plan(W, H, spec.box, spec.fit, spec.focus)
    try:
        # size="down": never enlarged; libvips applies the EXIF orientation itself (autorotate).
        img = pyvips.Image.thumbnail_source(src, p.scaled[0], height=p.scaled[1], size="down")
        if img.width != p.scaled[0] or img.height != p.scaled[1]:  # analysis and decoder disagree: trust the decoder
            p = plan(img.width, img.height, spec.box, spec.fit, spec.focus) if (img.width, img.height) != (W, H) else p
            x, y, w, h = p.window
            w, h = min(w, img.width), min(h, img.height)
            p = Plan((img.width, img.height), (min(x, img.width - w), min(y, img.height - h), w, h))
        x, y, w, h = p.window
        if (w, h) != (img.width, img.height):
            img = img.crop(x, y, w, h)
        return Derived(_encode_vips(_srgb8(img), spec), (img.width, img.height), "libvips")
    except pyvips.Error as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "unreadable"
        raise CorruptMedia(f"the original could not be decoded for this size ({first})", code="derivative-decode") from None


def _srgb8(img):
    """8-bit sRGB (alpha kept): a profile other than sRGB is converted on the small image."""
    if img.get_typeof("icc-profile-data") != 0:
        try:
            img = img.icc_transform("srgb", embedded=True, intent="perceptual")
        except Exception:  # noqa: BLE001 - a profile lcms rejects: plain conversion, as colour.convert_profile does
            pass
    if img.interpretation not in ("srgb", "b-w") or img.format != "uchar":
        img = img.colourspace("srgb")
    return img


def _encode_vips(img, spec: Spec) -> bytes:
    if spec.format == "jpeg":
        if img.hasalpha():
            img = img.flatten(background=list(spec.background))
        return img.jpegsave_buffer(Q=spec.quality, optimize_coding=True, interlace=True, subsample_mode="on", keep="none")
    if spec.format == "webp":
        return img.webpsave_buffer(Q=spec.quality, effort=WEBP_EFFORT, keep="none")
    if spec.format == "avif":
        return img.heifsave_buffer(Q=spec.quality, compression="av1", effort=AVIF_EFFORT, keep="none")
    raise UnsupportedMedia(f"no encoder for {spec.format}")


def _with_pillow(raw: bytes, spec: Spec) -> Derived:
    """The presets' chain, with the derivative as the one preset; the focus point stands in for the
    attention box (crop.attention_focus centres on it)."""
    from .image import render_image

    W, H = spec.analysis["width"], spec.analysis["height"]
    p = plan(W, H, spec.box, spec.fit, spec.focus)
    crops = p.size != p.scaled
    box = p.size if crops else (spec.box[0] or p.size[0], spec.box[1] or p.size[1])
    analysis = {**spec.analysis, "attention": {"x": spec.focus[0] * W, "y": spec.focus[1] * H, "width": 0, "height": 0}}
    preset = Preset("derivative", box, "smart" if crops else "contain", {spec.format: spec.quality})
    [r], _ = render_image(raw, analysis, (preset,), encoders={}, max_pixels=spec.max_pixels, background=spec.background,
                          threads=1)
    return Derived(r.data, r.size, "pillow")
