"""Rendition presets, loaded from presets.json and validated against presets.schema.json.

A bad file fails start-up with a message naming the problem, never the first job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).with_name("presets.schema.json")
DEFAULT_FILE = Path(__file__).with_name("presets.json")


class PresetsError(RuntimeError):
    """The presets file is missing, not JSON, or breaks its schema."""


@dataclass(frozen=True)
class Preset:
    name: str
    box: tuple[int, int]
    fit: str  # "contain" | "cover" | "smart"
    formats: dict[str, int]  # format -> quality, in the file's order

    @property
    def crops(self) -> bool:
        return self.fit in ("cover", "smart")


@dataclass(frozen=True)
class LadderRung:
    name: str
    short_side: int  # the picture's short side (height of a landscape video, width of a portrait one)
    crf: int
    maxrate_kbps: int  # the VBV cap on the CRF encode
    bufsize_kbps: int


@dataclass(frozen=True)
class Ladder:
    """The HLS ladder: rungs from the largest down, one x264 preset/profile, one AAC-LC audio track."""
    rungs: tuple[LadderRung, ...]
    x264_preset: str
    x264_profile: str
    audio_kbps: int
    audio_rate: int
    audio_channels: int


@dataclass(frozen=True)
class Catalogue:
    encoders: dict[str, dict]  # format -> effort options (JPEG progressive/optimize, WebP method, AVIF speed)
    image_presets: tuple[Preset, ...]
    poster: Preset
    still: Preset
    storyboard_quality: int
    animated_poster: tuple[str, str, int]  # (name, format, quality)
    ladder: Ladder

    def formats(self) -> set[str]:
        presets = (*self.image_presets, self.poster, self.still)
        return {f for p in presets for f in p.formats} | {"jpeg", self.animated_poster[1]}


def _preset(d: dict) -> Preset:
    return Preset(d["name"], (d["box"][0], d["box"][1]), d["fit"], dict(d["formats"]))


def _ladder(d: dict, where: str) -> Ladder:
    rungs = tuple(LadderRung(r["name"], r["short_side"], r["crf"], r["maxrate_kbps"], r["bufsize_kbps"]) for r in d["rungs"])
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise PresetsError(f"{where}: video/ladder/rungs names must be unique, got {names}")
    sides = [r.short_side for r in rungs]
    if sides != sorted(set(sides), reverse=True):
        raise PresetsError(f"{where}: video/ladder/rungs must go from the largest short_side down, each smaller, got {sides}")
    a = d["audio"]
    return Ladder(rungs, d["x264"]["preset"], d["x264"]["profile"], a["bitrate_kbps"], a["sample_rate"], a["channels"])


def parse(doc: object, where: str = "presets") -> Catalogue:
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise PresetsError(f"{where}: {path}: {e.message}")
    assert isinstance(doc, dict)  # the schema's root is an object: validated above
    presets = tuple(_preset(p) for p in doc["image_presets"])
    names = [p.name for p in presets] + [doc["video"]["poster"]["name"], doc["video"]["still"]["name"]]
    if len(set(names)) != len(names):
        raise PresetsError(f"{where}: preset names must be unique, got {names}")
    # Every completed image gets a full-frame rendition in each format: some `contain` preset must list it.
    full = {f for p in presets if not p.crops for f in p.formats}
    cropped_only = sorted({f for p in presets for f in p.formats} - full)
    if not full or cropped_only:
        raise PresetsError(f"{where}: image_presets need a contain preset listing every format; "
                           f"only crops list {cropped_only or 'any format'}")
    ap = doc.get("animated_poster", {"name": "poster", "format": "jpeg", "quality": 82})
    if ap["name"] in names[: len(presets)]:
        raise PresetsError(f"{where}: animated_poster name {ap['name']!r} clashes with an image preset")
    enc = {"jpeg": {}, "webp": {}, "avif": {}} | doc["encoders"]
    return Catalogue(
        encoders=enc,
        image_presets=presets,
        poster=_preset(doc["video"]["poster"]),
        still=_preset(doc["video"]["still"]),
        storyboard_quality=doc["video"]["storyboard"]["quality"],
        animated_poster=(ap["name"], ap["format"], ap["quality"]),
        ladder=_ladder(doc["video"]["ladder"], where),
    )


@lru_cache(maxsize=4)
def load(path: Path = DEFAULT_FILE) -> Catalogue:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PresetsError(f"presets file {path} does not exist (RENDER_PRESETS_FILE)") from None
    except json.JSONDecodeError as exc:
        raise PresetsError(f"presets file {path} is not JSON: {exc}") from None
    return parse(doc, str(path))
