"""Rendition presets and encoder settings (issue 5 turns these into a validated data file)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    long_edge: int
    formats: tuple[str, ...]


IMAGE_PRESETS = (
    Preset("large", 1280, ("jpeg", "webp")),
    Preset("thumb", 256, ("jpeg", "webp")),
)
POSTER = Preset("poster", 1280, ("jpeg",))

ENCODERS = {
    # Pillow save() arguments per format.
    "jpeg": {"format": "JPEG", "quality": 82, "progressive": True, "optimize": True},
    "webp": {"format": "WEBP", "quality": 80, "method": 4},
}
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"jpeg": "jpg", "webp": "webp"}
CACHE_CONTROL = "public, max-age=31536000, immutable"  # names are per job+preset: never rewritten
