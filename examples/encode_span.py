"""Encode one span of a video into every rung of an HLS ladder, as one render segment does:
one decode, a scale per rung, x264 per rung, MPEG-TS media segments on a shared grid.

    .venv/bin/python examples/encode_span.py clip.mp4 OUT_DIR [start_s end_s]

The ladder is the one in services/render/presets.json (rungs above the source are skipped).
"""
from __future__ import annotations

import json
import sys

from services.media.budget import Budget
from services.media.video import VideoFile, VideoLimits
from services.render.ladder import choose_rungs, encode_span
from services.render.presets import load

HLS_SEGMENT_SECONDS = 6.0  # HLS_SEGMENT_SECONDS' default


def main(args: list[str]) -> int:
    if len(args) not in (2, 4):
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    path, out_dir = args[0], args[1]
    with VideoFile(path) as video:
        rungs = choose_rungs(load().ladder, *video.display_size())
        start = float(args[2]) if len(args) == 4 else video.start_s()
        end = float(args[3]) if len(args) == 4 else video.keyframe_times()[1]
    result = encode_span(path, start, end, [r.as_dict() for r in rungs], hls_segment_s=HLS_SEGMENT_SECONDS, out_dir=out_dir,
                         limits=VideoLimits(), budget=Budget.unlimited())
    for name, rung in result["rungs"].items():
        files = ", ".join(s["file"] for s in rung["segments"])
        print(f"{name}: {rung['width']}x{rung['height']} {rung['codecs']} -> {files}")
    print(json.dumps({"audio": result["audio"], "hdr": result["hdr"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
