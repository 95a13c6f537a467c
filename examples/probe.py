"""Probe a media file the way mediarelay's door and stages see it: its sniffed type, what its
headers declare (before any pixel is decoded), and for a video what PyAV reads of it.

    .venv/bin/python examples/probe.py photo.jpg clip.mp4

Everything here is services/media/: pure media code, no cloud, no Flask.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from services.common.errors import MediarelayError
from services.media.mediatypes import sniff
from services.media.precheck import facts_of
from services.media.video import VideoFile


def probe(path: Path) -> dict:
    raw = path.read_bytes()
    media = sniff(raw[:4096])
    if media is None:
        return {"file": path.name, "error": "not an image or video mediarelay recognises"}
    out: dict = {"file": path.name, "content_type": media.content_type, "kind": media.kind}
    if media.kind == "image":
        facts = facts_of(raw)  # from the headers: canvas, frames, bytes per pixel
        out["declared"] = {"format": facts.format, "width": facts.width, "height": facts.height,
                           "frames": facts.frames, "decoded_bytes": facts.decoded_bytes}
    else:
        try:
            with VideoFile(raw) as video:
                out["video"] = video.probe()  # duration, fps, codec, display size, rotation...
        except MediarelayError as exc:  # the decoder guard's reason, written for a person
            out["error"] = f"{exc.error_class}: {exc.reason}"
    return out


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    for p in paths:
        print(json.dumps(probe(Path(p)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
