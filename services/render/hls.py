"""HLS playlists for the ladder (RFC 8216, protocol version 3): one media playlist per rung, one master.

VOD once the ladder is whole; while it is being written, EVENT playlists of the finished prefix
(services/ingest/growing.py): segments are only ever appended, and no EXT-X-ENDLIST, so a player
reloads them until the VOD playlist (the same segments, ENDLIST) is served.

The media segments come from services/render/ladder.py (encode_span, one call per span); at fan-in
`playlists` joins the spans' results in order. BANDWIDTH is the peak segment bit rate (RFC 8216
4.3.4.2: the largest bytes x 8 / duration of any segment, container overhead included),
AVERAGE-BANDWIDTH the whole rung's; CODECS comes from each rung's SPS (profile, constraints, level).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import PurePosixPath


def hls_prefix(job_id: str) -> str:
    return f"renditions/{job_id}/hls/"


def media_segment_name(index: int, file: str) -> str:
    """A span's HLS media segment "720p/01.ts" as its rung's playlist names it: "0003-01.ts"."""
    return f"{index:04d}-{PurePosixPath(file).name}"


def largest_first(ladder: dict) -> dict:
    """The rungs from the top down (a stored result's keys come back sorted by name): the master
    lists the top rung first and the MP4 is made of it."""
    rungs = ladder["rungs"]
    order = sorted(rungs, key=lambda n: -rungs[n]["width"] * rungs[n]["height"])
    return {**ladder, "rungs": {n: rungs[n] for n in order}}


def _duration(d: float) -> str:
    return f"{d:.6f}".rstrip("0").rstrip(".") if d else "0"


def media_playlist(segments: list[dict], target: float | None = None, *, ended: bool = True) -> str:
    """A media playlist of `segments` [{"uri", "duration_s"}] in order: VOD, or EVENT without
    EXT-X-ENDLIST while more segments will be appended (`ended=False`).

    EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must not exceed it
    (4.3.3.1); `target` (the HLS segment length) is a floor, the longest segment decides."""
    longest = max((s["duration_s"] for s in segments), default=0.0)
    tdur = max(1, math.floor(longest + 0.5), math.ceil(target - 1e-9) if target else 1)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{tdur}", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}"]
    for s in segments:
        lines += [f"#EXTINF:{_duration(s['duration_s'])},", s["uri"]]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(variants: list[dict]) -> str:
    """A master playlist: variants [{"uri", "bandwidth", "average_bandwidth", "width", "height", "codecs",
    "frame_rate"}], listed in the order given (players start with the first)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        attrs = [f"BANDWIDTH={int(v['bandwidth'])}", f"AVERAGE-BANDWIDTH={int(v['average_bandwidth'])}",
                 f"RESOLUTION={v['width']}x{v['height']}", f'CODECS="{v["codecs"]}"']
        if v.get("frame_rate"):
            attrs.append(f"FRAME-RATE={v['frame_rate']:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v["uri"]]
    return "\n".join(lines) + "\n"


def bandwidths(segments: list[dict]) -> tuple[int, int]:
    """(peak, average) bit rate of segments [{"bytes", "duration_s"}], bits per second."""
    total_bytes = sum(s["bytes"] for s in segments)
    total_s = sum(s["duration_s"] for s in segments)
    peak = max((s["bytes"] * 8 / s["duration_s"] for s in segments if s["duration_s"] > 0), default=0.0)
    return math.ceil(peak), math.ceil(total_bytes * 8 / total_s) if total_s > 0 else 0


def playlists(spans: list[dict], segment_uri: Callable[[int, str], str], playlist_uri: Callable[[str], str],
              target: float | None = None, *, ended: bool = True) -> tuple[str, dict[str, str]]:
    """The master playlist and each rung's media playlist from the spans' encode_span results, in order.

    `segment_uri(span_index, file)` names a segment as the media playlist refers to it (`file` is
    "720p/00.ts"); `playlist_uri(rung)` names a rung's media playlist as the master refers to it."""
    first = spans[0]["rungs"]
    media, variants = {}, []
    for name, rung in first.items():
        segs = [dict(s, uri=segment_uri(i, s["file"])) for i, span in enumerate(spans) for s in span["rungs"][name]["segments"]]
        media[name] = media_playlist(segs, target, ended=ended)
        peak, average = bandwidths(segs)
        # Spans are encoded alike, but x264 picks the level per encode: the master names the highest.
        codecs = max((span["rungs"][name]["codecs"] for span in spans), key=lambda c: c.split(",")[0][-2:])
        variants.append({"uri": playlist_uri(name), "bandwidth": peak, "average_bandwidth": average,
                         "width": rung["width"], "height": rung["height"], "codecs": codecs,
                         "frame_rate": rung.get("frame_rate")})
    return master_playlist(variants), media
