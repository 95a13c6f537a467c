"""Plan a video's spans as analyze does before it fans out: spans that start on keyframes,
read from the packet index without decoding a frame. Each span becomes one segment message.

    .venv/bin/python examples/plan_spans.py clip.mp4 [target seconds, default 30]
"""
from __future__ import annotations

import sys

from services.media.spans import plan_file
from services.media.video import VideoFile

MAX_SPANS = 300  # VIDEO_MAX_SEGMENTS' default


def main(args: list[str]) -> int:
    if not args:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    target = float(args[1]) if len(args) > 1 else 30.0
    with VideoFile(args[0]) as video:
        keyframes, end = video.keyframe_times()
        spans = plan_file(video, target, MAX_SPANS)
    print(f"{len(keyframes)} keyframes, ends at {end:.3f} s; {len(spans)} span(s) of ~{target:g} s:")
    for span in spans:
        print(f"  span {span.index}: {span.start_s:8.3f} -> {span.end_s:8.3f} s  ({span.duration_s:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
