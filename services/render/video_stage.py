"""render for a video: the ladder and the pictures per segment; playlists, MP4 and storyboard at fan-in.

The segments are analyze's plan (`analysis.segments`: spans starting on keyframes). A long video's
n spans are 2n segments (`beside`): n ladder segments, every rung's HLS media segments of a span from
one decode (ladder.py), which need only the plan and so start on analyze's `planned` message while the
analysis runs; and n picture segments, the poster candidates, shot stills and storyboard tiles whose
moments fall in a span (video.py), published once the analysis is here. The stage stores them under
deterministic names (create-if-absent). The one fan-in (whichever segment records last: the join of
the ladder and the analysis) writes each rung's media playlist and the master playlist (hls.py),
remuxes the top rung's segments into one MP4 (moov first, no second encode), chooses the poster and
composes the storyboard. A one-segment video does all of it in its own push: no fan-out, no
segment message.
"""
from __future__ import annotations

import contextlib
import tempfile
from functools import partial
from pathlib import Path

from ..media.rangefile import RangeSource
from ..media.spans import Span
from ..pipeline import media_work
from ..pipeline.handon import FanOut, StageResult, ensure_job_active, segment_messages, segment_prefix
from ..pipeline.jobstate import Job
from ..pipeline.neardup import check_picture
from ..pipeline.payloads import SegmentMessage
from ..pipeline.playable import publish_playable
from ..pipeline.runtime import Runtime
from . import hls
from .hls import hls_prefix, media_segment_name
from .hls import largest_first as _largest_first
from .image import Rendition
from .ladder import choose_rungs, encode_span, remux_mp4
from .store import object_name, store_file, store_rendition, store_storyboard
from .video import Moment, assign, choose_poster, compose_storyboard, moments, render_moments, storyboard_for
from .work import RenderOptions

TS_TYPE = "video/mp2t"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MP4_TYPE = "video/mp4"
MP4_NAME = "video.mp4"


def on_the_clock(analysis: dict) -> dict:
    """Analyses from before PTS times (v1/v2) have no start_s: their times start at 0."""
    return {"start_s": 0.0, **analysis, "duration_s": float(analysis.get("duration_s") or 0.0)}


def spans_of(analysis: dict) -> list[dict]:
    """analyze's plan; an analysis from before segments (v1-v3) is one span."""
    if analysis.get("segments"):
        return [dict(s) for s in analysis["segments"]]
    start = float(analysis.get("start_s") or 0.0)
    return [{"index": 0, "start_s": start, "end_s": round(start + float(analysis.get("duration_s") or 0.0), 6)}]


def board_of(opts: RenderOptions, analysis: dict):
    return storyboard_for(analysis, opts.storyboard_tile_width, opts.storyboard_columns, opts.storyboard_interval_seconds,
                          opts.storyboard_max_tiles)


def handle_video(rt: Runtime, opts: RenderOptions, job: Job, msg: dict) -> StageResult:
    analysis = msg["analysis"] = on_the_clock(msg["analysis"])
    spans = spans_of(analysis)
    if len(spans) == 1 and not msg.get("planned"):  # a short video: everything in this push
        params = ladder_params(opts, analysis) | pictures_params(opts, analysis, spans)[0]
        [message] = segment_messages(msg, "render", spans, [params])
        limits = media_work.stage_limits(rt, "render")
        with tempfile.TemporaryDirectory() as out_dir:  # kept until the MP4 is made: no download back
            result = render_segment(rt, opts, message, limits, out_dir)
            return merged(rt, opts, job, analysis, [result], limits=limits, local_dir=out_dir)
    return StageResult(fan_out=beside(opts, job, msg, spans, make_merge(opts)))


def ladder_params(opts: RenderOptions, analysis: dict) -> dict:
    """What a span's ladder needs: the container's facts only (the plan's), never the shots."""
    rungs = [r.as_dict() for r in choose_rungs(opts.catalogue.ladder, analysis["width"], analysis["height"])]
    audio = analysis.get("audio") != []  # v3+ lists the audio streams; older analyses: look in the file
    return {"rungs": rungs, "hls_segment_s": opts.hls_segment_seconds, "audio": audio, "hdr": opts.video_hdr}


def pictures_params(opts: RenderOptions, analysis: dict, spans: list[dict]) -> list[dict]:
    """Per span, the pictures its frames serve (poster, shot stills, storyboard tiles): the analysis's."""
    board = board_of(opts, analysis)
    wanted = assign(moments(analysis, board, opts.video_max_stills), [Span(**s) for s in spans])
    return [{"tile": list(board.tile), "moments": [m.as_dict() for m in w]} for w in wanted]


def beside(opts: RenderOptions, job: Job, msg: dict, spans: list[dict], merge) -> FanOut:
    """A long video's fan-out: 2n segments for n spans, joined at one fan-in (ARCHITECTURE.md, invariant 12).
    Segments 0..n-1 encode the ladder, which needs only the plan, so they start on analyze's
    `planned` message while the analysis still runs; segments n..2n-1 take the pictures of span
    i - n, which need the shots, so they are published once the analysis is here. Whichever segment
    records last (a ladder span or a picture span) claims the fan-in: one hand-on, whatever the order.

    - `planned` first: the ladder (and the pictures too if the analysis is already on the job).
    - the analysis joining that fan-out: its picture segments only (the ladder's are on their way).
    - anything else (the analysis first, a redelivery, the sweep's re-drive of either input):
      every segment not recorded yet."""
    n = len(spans)
    record = job["stages"]["render"].get("segments") or {}
    ladder = segment_messages(msg, "render", spans, [{"task": "ladder", "span": i, **ladder_params(opts, msg["analysis"])}
                                                    for i in range(n)], count=2 * n)
    analysis = analysed(job, msg)
    if analysis is None:
        return FanOut(ladder, {"spans": n}, merge, count=2 * n)
    pictures = segment_messages(msg, "render", spans, [{"task": "pictures", "span": i, **p}
                                                      for i, p in enumerate(pictures_params(opts, analysis, spans))],
                                first=n, count=2 * n)
    if msg.get("planned") and record.get("pictures"):
        messages: list[SegmentMessage] = []  # the analysis came first and published every segment
    elif not msg.get("planned") and record.get("count") == 2 * n and not record.get("pictures"):
        messages = pictures
    else:
        messages = ladder + pictures
    return FanOut(messages, {"spans": n, "pictures": True}, merge, count=2 * n)


def analysed(job: Job, msg: dict) -> dict | None:
    """The whole analysis, if here: the message's, or (for a `planned` one) the job's once analyze handed off."""
    if not msg.get("planned"):
        return msg["analysis"]
    if job["stages"]["analyze"]["state"] in ("handed-off", "done") and job.get("analysis"):
        return on_the_clock(job["analysis"])
    return None


def segment_outputs(seg: SegmentMessage) -> list[str]:
    """A span's HLS media segments (named by its index, media_segment_name) in every rung: removed
    if its job is cancelled while it runs. Its shot stills keep their shot's name (not removed)."""
    return [hls_prefix(seg["job_id"]) + f"{r['name']}/{seg['index']:04d}-" for r in seg["params"].get("rungs", [])]


def segment_stored(rt: Runtime, seg: SegmentMessage) -> None:
    """Segment 0 holds the first media segments of every rung: from now on the ladder plays (the
    playback route serves growing playlists of the stored prefix, services/ingest/growing.py)."""
    if seg["index"] == 0:
        publish_playable(rt, seg["job_id"])


def make_work(opts: RenderOptions):
    def work(rt: Runtime, job: Job, seg: SegmentMessage) -> dict:
        return render_segment(rt, opts, seg, media_work.segment_limits(rt, "render"))

    return work


def make_merge(opts: RenderOptions):
    def merge(rt: Runtime, job: Job, results: list[dict]) -> StageResult:
        return merged(rt, opts, job, on_the_clock(job["analysis"]), results, limits=media_work.segment_limits(rt, "render"))

    return merge


def _span_work(_raw: bytes, *, path: str | RangeSource, seg: SegmentMessage, opts: RenderOptions, out_dir: str,
               budget) -> dict:
    """In the child: the span's ladder, and/or its poster, stills and storyboard tiles (`task`: ladder or
    pictures; none, both: a one-segment video, or a segment message of the previous release)."""
    p, cat = seg["params"], opts.catalogue
    out = {}
    if p.get("task") != "pictures":
        out["ladder"] = encode_span(path, seg["start_s"], seg["end_s"], p["rungs"], hls_segment_s=p["hls_segment_s"],
                                    out_dir=out_dir, limits=opts.video_limits, budget=budget, audio=p["audio"], hdr=p["hdr"])
    if p.get("task") != "ladder":
        out["pictures"] = render_moments(path, seg["start_s"], seg["end_s"], [Moment.from_dict(m) for m in p["moments"]],
                                         poster=cat.poster, still=cat.still, encoders=cat.encoders, tile=tuple(p["tile"]),
                                         limits=opts.video_limits, budget=budget)
    return out


def render_segment(rt: Runtime, opts: RenderOptions, seg: SegmentMessage, limits, keep_in: str | None = None) -> dict:
    """One span rendered in the bounded child and stored; returns its JSON-able result. With
    `keep_in`, the media segments are written there and left for the caller (the inline fan-in)."""
    job_id, index, src = seg["job_id"], seg["index"], seg["source"]
    work = segment_prefix(job_id, "render", index)
    folder = contextlib.nullcontext(keep_in) if keep_in else tempfile.TemporaryDirectory()
    with media_work.ranged(rt, src) as source, folder as out_dir:
        span = partial(_span_work, path=source.ref, seg=seg, opts=opts, out_dir=out_dir, budget=limits.budget("rendering"))
        out = media_work.media_work(rt, "render", job_id, span, limits=limits, source=source)
        ladder = out.get("ladder")
        for name, rung in (ladder["rungs"] if ladder else {}).items():
            for s in rung["segments"]:
                ref = store_file(rt, hls_prefix(job_id) + f"{name}/{media_segment_name(index, s['file'])}",
                                 Path(out_dir) / s["file"], TS_TYPE)
                s.update(uri=ref["uri"], generation=ref["generation"])
    pictures = out.get("pictures") or {"stills": [], "poster": None, "tiles": None}
    poster = pictures["poster"]
    if poster is not None:  # a candidate until the fan-in chooses among the spans': kept aside under work/
        poster = {**poster, "renditions": [_aside(rt, job_id, r, f"{work}poster") for r in poster["renditions"]],
                  "stills": {str(i): [_aside(rt, job_id, r, f"{work}poster-shot-{i}") for r in rs]
                             for i, rs in poster["stills"].items()}}
    tiles = pictures["tiles"]
    if tiles is not None:
        tiles = {"indices": tiles["indices"], **store_file(rt, f"{work}tiles.png", tiles["png"], "image/png")}
    return {"index": index, "span": seg["params"].get("span", index), "ladder": ladder, "pictures": "pictures" in out,
            "stills": [store_rendition(rt, job_id, r) for r in pictures["stills"]], "poster": poster, "tiles": tiles,
            "hls_segment_s": seg["params"].get("hls_segment_s")}


def _aside(rt: Runtime, job_id: str, r: Rendition, stem: str) -> dict:
    """A rendition stored under work/ with the name it takes if chosen."""
    ref = store_rendition(rt, job_id, r, name=f"{stem}.{Path(object_name(job_id, r)).suffix.lstrip('.')}")
    return ref | {"final_name": object_name(job_id, r)}


def _adopt(rt: Runtime, ref: dict) -> dict:
    """A chosen rendition written from work/ under its own name (create-if-absent)."""
    stored = store_file(rt, ref["final_name"], _read(rt, ref["uri"]), ref["content_type"])
    return {k: v for k, v in ref.items() if k != "final_name"} | stored


def merged(rt: Runtime, opts: RenderOptions, job: Job, analysis: dict, results: list[dict], *, limits,
           local_dir: str | None = None) -> StageResult:
    """The fan-in: playlists, the MP4, the storyboard, the renditions in order; media-rendered v3.
    `local_dir`: where the media segments still are (one segment, in this push), else from GCS."""
    job_id = job["job_id"]
    # The join (render beside analysis): spans' ladders and spans' pictures, from their own segments or
    # (a one-segment video, a fan-out of the previous release) from one.
    ladders = sorted((r for r in results if r["ladder"] is not None), key=lambda r: r["index"])
    results = sorted((r for r in results if r.get("pictures", True)), key=lambda r: r.get("span", r["index"]))
    spans = [_largest_first(r["ladder"]) for r in ladders]
    prefix = hls_prefix(job_id)
    master, media = hls.playlists(spans, lambda i, f: media_segment_name(ladders[i]["index"], f),
                                  lambda name: f"{name}/index.m3u8", opts.hls_segment_seconds)
    ladder = []
    for name, rung in spans[0]["rungs"].items():
        segs = [s for span in spans for s in span["rungs"][name]["segments"]]
        peak, average = hls.bandwidths(segs)
        playlist = store_file(rt, prefix + f"{name}/index.m3u8", media[name].encode(), PLAYLIST_TYPE)
        ladder.append({"name": name, "width": rung["width"], "height": rung["height"], "bandwidth": peak,
                       "average_bandwidth": average, "codecs": rung["codecs"], "frame_rate": rung.get("frame_rate"),
                       "segments": len(segs), "playlist": playlist})
    master_ref = store_file(rt, prefix + "master.m3u8", master.encode(), PLAYLIST_TYPE)
    top = ladder[0]
    mp4 = _mp4(rt, job_id, [s for span in spans for s in span["rungs"][top["name"]]["segments"]], limits, local_dir)
    duration = round(sum(s["duration_s"] for span in spans for s in span["rungs"][top["name"]]["segments"]), 6)
    video = {
        "hls": {"master": master_ref, "segment_seconds": opts.hls_segment_seconds, "version": 3},
        "mp4": {**mp4, "width": top["width"], "height": top["height"], "rung": top["name"], "duration_s": duration},
        "ladder": ladder,
        "audio": bool(spans[0]["audio"]),
        "hdr": spans[0].get("hdr"),
        "segments": len(ladders),
        "duration_s": duration,
    }
    chosen = choose_poster([res["poster"] for res in results])
    stills: dict[int, list[dict]] = {r["shot"]: [] for res in results for r in res["stills"]}
    for res in results:
        for r in res["stills"]:
            stills[r["shot"]].append(r)
    stills.update({int(i): [_adopt(rt, r) for r in rs] for i, rs in chosen["stills"].items()})
    renditions = [_adopt(rt, r) for r in chosen["renditions"]] + [r for i in sorted(stills) for r in stills[i]]
    strips: list[dict | None] = [{"indices": res["tiles"]["indices"], "png": _read(rt, res["tiles"]["uri"])}
                                 for res in results if res["tiles"] is not None]
    board = compose_storyboard(board_of(opts, analysis), strips, opts.catalogue.storyboard_quality)
    fields = {"renditions": renditions, "skipped": [], "video": video, "storyboard": store_storyboard(rt, job_id, board)}
    payload = {"job_id": job_id, "kind": "video", "source": job["source"], "analysis": analysis, **fields}
    return StageResult(publish=[("media-rendered", payload)], job_fields={**fields, **_poster_facts(rt, job, chosen)})


def _poster_facts(rt: Runtime, job: Job, chosen: dict) -> dict:
    """The poster's placeholders and its place in the client's near-duplicate index (a video is recorded, never
    skipped: its expensive work is done by the time its poster is known)."""
    out: dict = {"placeholders": chosen["placeholders"]} if chosen.get("placeholders") else {}
    duplicate = check_picture(rt.near_duplicates, {**job, "on_duplicate": "process"}, chosen.get("phash"),
                              rt.settings.near_duplicate_distance)
    return {**out, **({"duplicate": duplicate} if duplicate else {})}


def _mp4(rt: Runtime, job_id: str, segments: list[dict], limits, local_dir: str | None) -> dict:
    """The top rung's segments remuxed into one progressive MP4, in the bounded child."""
    with tempfile.TemporaryDirectory() as tmp:
        if local_dir:
            paths = [str(Path(local_dir) / s["file"]) for s in segments]
        else:
            paths = []
            for i, s in enumerate(segments):
                bucket, _, name = s["uri"].removeprefix("gs://").partition("/")
                path = Path(tmp) / f"{i:05d}.ts"
                with path.open("wb") as f:
                    rt.blobs.download_to(bucket, name, None, f)
                paths.append(str(path))
        out = Path(tmp) / MP4_NAME
        media_work.media_work(rt, "render", job_id, partial(_remux, paths=paths, out=str(out)), limits=limits)
        ensure_job_active()
        return store_file(rt, f"renditions/{job_id}/{MP4_NAME}", out, MP4_TYPE)


def _read(rt: Runtime, uri: str) -> bytes:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return rt.blobs.get_bytes(bucket, name)


def _remux(_raw: bytes, paths: list[str], out: str) -> dict:
    return remux_mp4(paths, out)
