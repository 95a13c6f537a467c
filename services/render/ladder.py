"""The HLS ladder of one span of a video: every rung encoded from ONE decode, as MPEG-TS media segments.

A span is [start_s, end_s) on the player's clock (the segment plan: services/media/spans.py),
starting on a keyframe of the source. `encode_span` decodes it once (VideoFile.frames), makes
each frame upright with square pixels (display rotation by `transpose`, SAR by scaling to the
display size), optionally tone-maps HDR to SDR BT.709, and scales it to every rung in one FFmpeg
filter graph (split -> scale per rung, swscale's default bicubic, as ffmpeg's `scale` filter). Each
rung is one libx264 encoder for the whole span: closed GOPs, an IDR forced on the first frame at or
after every HLS boundary (span start + k x hls_segment_s; the last HLS segment absorbs a remainder
under half of it), so every rung's segments start together on an IDR and any rung can follow any
other. Frames keep their source PTS, so spans join without gap or overlap; a span's first packets
decode from its first picture on (`_lead_in`), so a player's timeline starts with picture and sound.

Audio is decoded, resampled to 48 kHz stereo, and AAC-LC encoded ONCE per span, then muxed into
every rung. AAC frames (1024 samples) lie on one grid over the whole file, counted from the audio
stream's first sample; a span owns the frames that START in [start_s, end_s), so adjacent spans'
audio tiles the timeline exactly (no gap, no overlap, no repeated frame) and a span's audio starts
at most one AAC frame (21.3 ms at 48 kHz) after its video. The encoder's priming (1024 samples of
delay, shifted out of the PTS by FFmpeg) and the MDCT's overlap are covered by AUDIO_ROLL frames of
real audio before the span and after it (pre-roll/post-roll, encoded and dropped): the frames kept at
a join were computed from the same signal on both sides, so the seam does not click.
"""
from __future__ import annotations

import math
import queue
import struct
import threading
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..common.errors import CorruptMedia, UnsupportedMedia
from ..media.rangefile import RangeSource, opened
from ..media.video import SPAN_EPSILON, VideoFile, VideoLimits, _reason
from . import hdr as colour
from .presets import Ladder

AAC_FRAME = 1024  # samples per AAC-LC frame
# Frames of real audio encoded before and after a span and dropped. One is not enough: the encoder
# sees the flush's silence coming and ends on a transition window that the next span's first frame
# does not overlap-add with (measured: a 0.067 spike on a 0.1 tone at the join; with 2, 0.003, the
# codec's own error elsewhere).
AUDIO_ROLL = 2
# Every timestamp written to MPEG-TS is the source's plus this constant: B-frames put the first DTS
# before the first PTS, and MPEG-TS has no edit list to say so (a muxer would shift that one file and
# break the timeline). 10 s, as Apple's segmenters start. The same for every span, so the timeline
# stays continuous; HLS players start from the first PTS, and remux_mp4 takes it off again.
TS_OFFSET_S = 10
TS_MAX_DELAY_US = "700000"
# x264 frame threads per rung. Each rung encodes on a thread of its own (PyAV lets go of the GIL while
# x264 works), so the rungs already use the cores side by side; x264's own frame threads on top cost
# bytes (measured +3.8 % at 2 threads on 1080p, same CRF) for no gain on two cores.
X264_THREADS = 1
RUNG_QUEUE_FRAMES = 4  # filtered frames waiting per rung: bounds memory while a slower rung catches up
# A source whose short side is this much above the largest rung it reaches gets a rung at its own size.
SOURCE_RUNG_MARGIN = 1.1


@dataclass(frozen=True)
class Rung:
    """One rung chosen for one video: its upright output size and its encoder settings."""
    name: str
    width: int
    height: int
    crf: int
    maxrate_kbps: int
    bufsize_kbps: int
    preset: str = "veryfast"
    profile: str = "high"
    audio_kbps: int = 128
    audio_rate: int = 48000
    audio_channels: int = 2

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Rung:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def choose_rungs(ladder: Ladder, display_w: int, display_h: int) -> list[Rung]:
    """The ladder's rungs for an upright picture of display_w x display_h, never upscaled.

    A rung's short side is the picture's short side; rungs above the source's are dropped; a
    source smaller than the smallest rung gets one rung at its own (even) size, named by it."""
    short, long_ = min(display_w, display_h), max(display_w, display_h)
    landscape = display_w >= display_h

    def rung(name: str, w: int, h: int, *, crf: int, maxrate_kbps: int, bufsize_kbps: int) -> Rung:
        """A Rung with the ladder's encoder and audio settings, which every rung shares."""
        return Rung(name, w, h, crf, maxrate_kbps, bufsize_kbps, preset=ladder.x264_preset, profile=ladder.x264_profile,
                    audio_kbps=ladder.audio_kbps, audio_rate=ladder.audio_rate, audio_channels=ladder.audio_channels)

    out = []
    above = None  # the smallest rung larger than the source
    for r in ladder.rungs:
        if r.short_side > short:
            above = r
            continue
        s, lg = _even(r.short_side), _even(r.short_side * long_ / short)
        w, h = (lg, s) if landscape else (s, lg)
        out.append(rung(r.name, w, h, crf=r.crf, maxrate_kbps=r.maxrate_kbps, bufsize_kbps=r.bufsize_kbps))
    if above is not None and out and short > SOURCE_RUNG_MARGIN * min(out[0].width, out[0].height):
        # A source between two rungs (900p, 360p) keeps its own size on top, with the larger rung's
        # settings and its bit rate caps scaled by area, so no viewer gets less than was uploaded.
        share = short * long_ / (above.short_side * above.short_side * long_ / short)
        w, h = (_even(long_), _even(short)) if landscape else (_even(short), _even(long_))
        out.insert(0, rung(f"{min(w, h)}p", w, h, crf=above.crf, maxrate_kbps=max(1, round(above.maxrate_kbps * share)),
                           bufsize_kbps=max(1, round(above.bufsize_kbps * share))))
    if not out:
        r = ladder.rungs[-1]
        w, h = max(2, display_w // 2 * 2), max(2, display_h // 2 * 2)  # rounded down: never upscaled
        out.append(rung(f"{min(w, h)}p", w, h, crf=r.crf, maxrate_kbps=r.maxrate_kbps, bufsize_kbps=r.bufsize_kbps))
    return out


def hls_bounds(start_s: float, end_s: float, hls_segment_s: float) -> list[float]:
    """Nominal starts of a span's HLS segments: start + k x hls_segment_s; the last one absorbs a
    remainder shorter than half a segment (so no segment is shorter than half the target)."""
    duration = end_s - start_s
    n = max(1, math.floor(duration / hls_segment_s + 1e-9))
    if duration - n * hls_segment_s >= hls_segment_s / 2 - 1e-9:
        n += 1
    return [start_s + k * hls_segment_s for k in range(n)]


def x264_options(rung: Rung, frame_rate: float, hls_segment_s: float, threads: int = X264_THREADS) -> dict[str, str]:
    """libx264's options for a rung (one home: the bench gives ffmpeg the same ones).

    keyint = one HLS segment of frames (x264 may still cut a GOP early on a scene change);
    open-gop off: every GOP closed, so a segment decodes alone."""
    gop = max(1, round(hls_segment_s * frame_rate))
    return {
        "preset": rung.preset,
        "profile": rung.profile,
        "crf": str(rung.crf),
        "maxrate": f"{rung.maxrate_kbps}k",
        "bufsize": f"{rung.bufsize_kbps}k",
        "forced-idr": "1",
        "x264-params": f"keyint={gop}:open-gop=0",
        "threads": str(threads),
    }


# --- audio ---------------------------------------------------------------------------------------

_ADTS_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]


def adts(payload: bytes, rate: int, channels: int) -> bytes:
    """A raw AAC-LC frame with its 7-byte ADTS header (MPEG-TS carries AAC as ADTS)."""
    n = len(payload) + 7
    sr = _ADTS_RATES.index(rate)
    profile = 1  # AAC LC (object type 2, minus one)
    header = (0xFFF << 44) | (0 << 43) | (0 << 41) | (1 << 40) | (profile << 38) | (sr << 34) | (channels << 30) \
        | (n << 13) | (0x7FF << 2)
    return struct.pack(">Q", header)[1:] + payload


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


def span_audio(path: str | RangeSource, start_s: float, end_s: float, rung: Rung, budget) -> list[tuple[int, bytes]] | None:
    """The span's AAC-LC frames as (pts in 1/rate, ADTS bytes); None when the file has no audio."""
    rate, channels = rung.audio_rate, rung.audio_channels
    try:
        container = av.open(opened(path))
    except (av.error.FFmpegError, OSError):
        raise CorruptMedia("cannot open the video container to read its audio", code="corrupt-video") from None
    with container:
        stream = _audio_stream(container)
        if stream is None:
            return None
        t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        step = AAC_FRAME / rate
        first = max(0, math.ceil((start_s - t0) / step - 1e-6))  # frames on the file's grid
        last = max(first, math.ceil((end_s - t0) / step - 1e-6))  # exclusive
        if last == first:
            return []
        # Input: AUDIO_ROLL frames of pre-roll, the span, as many of post-roll (zeros past the audio's ends).
        s_in, s_end = (first - AUDIO_ROLL) * AAC_FRAME, (last + AUDIO_ROLL) * AAC_FRAME
        pcm = np.zeros((channels, s_end - s_in), np.float32)
        resampler = av.AudioResampler(format="fltp", layout="stereo" if channels == 2 else "mono", rate=rate)
        seek_to = t0 + s_in / rate - 0.5
        if seek_to > t0:
            container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
        pos: int | None = None  # where the next resampled sample goes, in samples from t0; None before the first frame

        def place(frames, at: int) -> int:
            """Copy resampled frames into the span's PCM from sample `at`; returns the position after them."""
            for fr in frames:
                a = fr.to_ndarray()
                n = a.shape[1]
                lo, hi = max(at, s_in), min(at + n, s_end)
                if hi > lo:
                    pcm[:, lo - s_in:hi - s_in] = a[:, lo - at:hi - at]
                at += n
            return at

        try:
            for i, frame in enumerate(container.decode(stream)):
                if pos is None:
                    pos = round((float(frame.pts * frame.time_base) - t0) * rate) if frame.pts is not None else 0
                pos = place(resampler.resample(frame), pos)
                if pos >= s_end:
                    break
                if i % 256 == 0:
                    budget.check("decoding the audio")
            else:
                if pos is not None:
                    pos = place(resampler.resample(None), pos)
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"the audio stream cannot be decoded: {_reason(exc)}", code="corrupt-video") from None

    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate = rate
    enc.layout = "stereo" if channels == 2 else "mono"
    enc.format = "fltp"
    enc.bit_rate = rung.audio_kbps * 1000
    enc.time_base = Fraction(1, rate)
    enc.open()
    base = round(t0 * rate)  # the grid's origin, in samples on the player's clock
    keep_from, keep_to = base + first * AAC_FRAME, base + last * AAC_FRAME
    out: list[tuple[int, bytes]] = []

    def collect(packets) -> None:
        for p in packets:
            if keep_from <= p.pts < keep_to:
                out.append((p.pts, adts(bytes(p), rate, channels)))

    for off in range(0, pcm.shape[1], AAC_FRAME):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, off:off + AAC_FRAME]), format="fltp", layout=enc.layout.name)
        fr.sample_rate = rate
        fr.pts = base + s_in + off
        fr.time_base = enc.time_base
        collect(enc.encode(fr))
    collect(enc.encode(None))
    return out


# --- video ---------------------------------------------------------------------------------------

def codecs_of(annexb: bytes) -> str:
    """RFC 6381 `avc1.PPCCLL` from the SPS (profile_idc, constraint flags, level_idc) of an Annex-B access unit."""
    i = 0
    while True:
        i = annexb.find(b"\x00\x00\x01", i)
        if i < 0 or i + 6 > len(annexb):
            raise ValueError("no SPS in the access unit")
        if annexb[i + 3] & 0x1F == 7:
            return "avc1." + annexb[i + 4:i + 7].hex().upper()
        i += 3


@dataclass
class _TsFile:
    """One open MPEG-TS file of a rung (one HLS segment) and its streams."""
    container: av.container.OutputContainer
    video: av.stream.Stream
    audio: av.stream.Stream | None  # None when the span has no audio


class _RungOutput:
    """One rung's encoder and its MPEG-TS files, one per HLS segment."""

    def __init__(self, rung: Rung, out_dir: Path, time_base: Fraction, rate: Fraction, *, hls_segment_s: float,
                 plan: colour.ColourPlan, threads: int):
        self.rung = rung
        self.dir = out_dir / rung.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tb = time_base
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = rung.width, rung.height, plan.pix_fmt
        enc.time_base = time_base
        enc.framerate = rate
        enc.sample_aspect_ratio = Fraction(1)
        for k, v in plan.tags.items():
            setattr(enc, k, v)
        enc.options = x264_options(rung, float(rate), hls_segment_s, threads)
        if plan.profile:  # 10-bit passthrough of HDR: High 10
            enc.options = enc.options | {"profile": plan.profile}
        self.enc = enc
        self.k = -1
        self.out: _TsFile | None = None  # the current segment's file; None before the first and after close_file
        self.files: list[Path] = []
        self.codecs: str | None = None
        # The span's first packets, held until one decodes after the first picture (see _lead_in).
        self.lead: list[av.Packet] | None = []
        self.lead_pts = 0

    def open_next(self, with_audio: bool) -> None:
        if self.out is not None:
            self.release_lead()
        self.close_file()
        self.k += 1
        path = self.dir / f"{self.k:02d}.ts"
        self.files.append(path)
        # max_delay lets the muxer group AAC frames into one PES packet (as ffmpeg's command line
        # does, 0.7 s): one packet header per AAC frame cost ~29 kbit/s a rung (+10 % at 240p).
        options = {"max_delay": TS_MAX_DELAY_US, "mpegts_copyts": "1"}  # copyts: the delay shifts no timestamp
        container = av.open(str(path), "w", format="mpegts", container_options=options)
        vstream = container.add_mux_stream("h264", width=self.rung.width, height=self.rung.height)
        vstream.time_base = self.tb
        astream = container.add_mux_stream("aac", rate=self.rung.audio_rate) if with_audio else None
        self.out = _TsFile(container, vstream, astream)

    def close_file(self) -> None:
        if self.out is not None:
            self.out.container.close()
            self.out = None

    def release_lead(self) -> None:
        """Mux the packets still held at the span's start as they are: the span (or its first segment) ended
        a frame or two in, before any packet decoded after the first picture."""
        held, self.lead = self.lead or [], None
        for p in held:
            self._mux(p)

    def _file(self) -> _TsFile:
        if self.out is None:  # route() opens the first file on the span's first IDR: a bug of ours, not the video's
            raise RuntimeError(f"the {self.rung.name} rung muxed a packet with no segment file open")
        return self.out

    def mux_video(self, packet: av.Packet) -> None:
        if self.codecs is None and packet.is_keyframe:
            self.codecs = codecs_of(bytes(packet))
        pts = self._pts(packet)
        if self.lead is not None:
            if not self.lead:
                self.lead_pts = pts  # the span's IDR: its first picture
            self.lead.append(packet)
            if packet.dts is not None and packet.dts <= self.lead_pts:
                return  # decodes at or before the first picture: its DTS may have to move
            held, self.lead = self.lead, None
            for p in _lead_in(held, self.lead_pts):
                self._mux(p)
            return
        self._mux(packet)

    def _pts(self, packet: av.Packet) -> int:
        if packet.pts is None:  # x264 stamps every packet with its frame's PTS (route() has read it already)
            raise RuntimeError(f"the {self.rung.name} encoder returned a packet without a PTS")
        return packet.pts

    def _mux(self, packet: av.Packet) -> None:
        out = self._file()
        offset = round(TS_OFFSET_S / self.tb)
        packet.pts = self._pts(packet) + offset
        if packet.dts is not None:
            packet.dts += offset
        packet.stream = out.video
        packet.time_base = self.tb
        out.container.mux(packet)

    def mux_audio(self, pts: int, data: bytes) -> None:
        p = av.Packet(data)
        p.pts = p.dts = pts + TS_OFFSET_S * self.rung.audio_rate
        p.duration = AAC_FRAME
        p.time_base = Fraction(1, self.rung.audio_rate)
        out = self._file()
        if out.audio is None:  # encode_span muxes audio only into files opened with it
            raise RuntimeError(f"the {self.rung.name} rung muxed audio into a segment opened without audio")
        p.stream = out.audio
        out.container.mux(p)


def _graph(video: VideoFile, first: av.VideoFrame, rungs: list[Rung], rotation: int, plan: colour.ColourPlan):
    """buffer -> [tone map] -> [transpose] -> split -> scale/setsar/format per rung -> buffersink per rung."""
    g = av.filter.Graph()
    tb = video.time_base
    src = g.add("buffer", f"video_size={first.width}x{first.height}:pix_fmt={first.format.name}:"
                          f"time_base={tb.numerator}/{tb.denominator}:pixel_aspect={video.sar.numerator}/{video.sar.denominator}")
    chain = list(plan.before_split)
    chain += {90: [("transpose", "clock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "cclock")]}.get(rotation, [])
    node = src
    for name, args in chain:
        nxt = g.add(name, args or None)
        node.link_to(nxt)
        node = nxt
    split = g.add("split", str(len(rungs)))
    node.link_to(split)
    sinks = []
    for i, r in enumerate(rungs):
        scale = g.add("scale", f"{r.width}:{r.height}{plan.scale_args}")
        sar = g.add("setsar", "1")
        fmt = g.add("format", plan.pix_fmt)
        sink = g.add("buffersink")
        split.link_to(scale, i, 0)
        scale.link_to(sar)
        sar.link_to(fmt)
        fmt.link_to(sink)
        sinks.append(sink)
    g.configure()
    return g, src, sinks  # the graph owns the filter contexts: keep it alive while they are used


def encode_span(path, start_s: float, end_s: float, rungs, *, hls_segment_s: float, out_dir, limits: VideoLimits, budget,
                   audio: bool = True, hdr: str = "tonemap", threads: int = X264_THREADS) -> dict:
    """Every rung's HLS media segments of the span [start_s, end_s): `out_dir/{rung}/{k:02d}.ts`.

    `rungs`: Rung objects or their dicts (as the segment message carries them). Returns
    {"rungs": {name: {"width", "height", "codecs", "frame_rate", "segments": [{"file", "start_s",
    "duration_s", "bytes"}]}}, "audio": bool, "hdr": what was done with HDR or None}."""
    if hdr not in colour.HDR_CHOICES:
        raise ValueError(f"hdr must be one of {sorted(colour.HDR_CHOICES)}, got {hdr!r}")
    rungs = [r if isinstance(r, Rung) else Rung.from_dict(r) for r in rungs]
    out_dir = Path(out_dir)
    bounds = hls_bounds(start_s, end_s, hls_segment_s)
    packets = span_audio(path, start_s, end_s, rungs[0], budget) if audio else None
    with_audio = packets is not None
    budget.check("encoding the audio")
    with VideoFile(path) as video:
        video.check_header(limits)
        rotation = video.rotation
        rate = video.stream.average_rate or video.stream.guessed_rate or Fraction(25)
        tb = video.time_base
        frames = video.frames(limits, lambda n: budget.check("encoding the ladder"), start_s=start_s, end_s=end_s)
        first = next(frames, None)
        if first is None:
            raise CorruptMedia(f"the video has no frame between {start_s:.3f} s and {end_s:.3f} s", code="corrupt-video")
        plan = colour.plan(first.frame, hdr)
        graph, src, sinks = _graph(video, first.frame, rungs, rotation, plan)
        outs = [_RungOutput(r, out_dir, tb, rate, hls_segment_s=hls_segment_s, plan=plan, threads=threads) for r in rungs]
        starts: list[float] = []  # each HLS segment's first frame time
        audio_next = [0] * len(outs)

        def route(o: _RungOutput, i: int, pkts) -> None:
            for p in pkts:
                t = float(p.pts * tb)
                if p.is_keyframe and o.k + 1 < len(starts) and t >= starts[o.k + 1] - SPAN_EPSILON:
                    if o.k >= 0 and with_audio:
                        audio_next[i] = _flush_audio(o, packets, audio_next[i], starts[o.k + 1])
                    o.open_next(with_audio)
                if with_audio:  # interleave: audio up to this packet's decode time
                    dts = float((p.dts if p.dts is not None else p.pts) * tb)
                    audio_next[i] = _flush_audio(o, packets, audio_next[i], min(dts, _seg_end(starts, o.k, end_s)))
                o.mux_video(p)

        workers = [_RungWorker(o, lambda pkts, o=o, i=i: route(o, i, pkts)) for i, o in enumerate(outs)]
        try:
            for f in _chain(first, frames):
                k = len(starts)
                boundary = k < len(bounds) and f.time >= bounds[k] - SPAN_EPSILON
                if boundary:
                    starts.append(f.time)  # before the frame is queued: the workers route by it
                try:
                    src.push(f.frame)
                except (av.error.FFmpegError, ValueError):
                    raise UnsupportedMedia(f"the video changes its picture format or size at {f.time:.3f} s, which the "
                                           "ladder does not follow", code="unsupported-video") from None
                for w, sink in zip(workers, sinks, strict=True):
                    out = sink.pull()
                    out.pts = round(f.time / tb)
                    out.time_base = tb
                    out.pict_type = av.video.frame.PictureType.I if boundary else av.video.frame.PictureType.NONE
                    w.feed(out)
            for w in workers:
                w.feed(_RungWorker.END)
            for w in workers:
                w.finish()
            for i, o in enumerate(outs):
                o.release_lead()
                if with_audio:
                    audio_next[i] = _flush_audio(o, packets, audio_next[i], end_s)
        finally:
            for w in workers:
                w.abort()
            for o in outs:
                o.close_file()
        del graph
    return {"rungs": _rungs_written(outs, starts, end_s, rate, with_audio), "audio": with_audio, "hdr": plan.done}


def _rungs_written(outs: list[_RungOutput], starts: list[float], end_s: float, rate: Fraction, with_audio: bool) -> dict:
    """What each rung's encoder wrote: its media segments, timed by the frames that opened them."""
    for o in outs:  # every forced IDR opened its segment: a mismatch is a bug of ours, not the file's
        assert len(o.files) == len(starts), (o.rung.name, len(o.files), len(starts))
    result = {}
    for o in outs:
        segs = []
        for k, f in enumerate(o.files):
            seg_end = starts[k + 1] if k + 1 < len(starts) else end_s
            segs.append({"file": f"{o.rung.name}/{f.name}", "start_s": round(starts[k], 6),
                         "duration_s": round(seg_end - starts[k], 6), "bytes": f.stat().st_size})
        result[o.rung.name] = {"width": o.rung.width, "height": o.rung.height,
                               "codecs": f"{o.codecs},mp4a.40.2" if with_audio else o.codecs,
                               "frame_rate": round(float(rate), 3), "segments": segs}
    return result


class _RungWorker:
    """A rung's encoder on a thread of its own, fed filtered frames through a short queue."""
    END = object()

    def __init__(self, o: _RungOutput, route):
        self.o, self.route = o, route
        self.q: queue.Queue = queue.Queue(RUNG_QUEUE_FRAMES)
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"x264-{o.rung.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                frame = self.q.get()
                if frame is _RungWorker.END or self.stop.is_set():
                    if frame is _RungWorker.END:
                        self.route(_encode(self.o.enc, None))
                    return
                self.route(_encode(self.o.enc, frame))
        except BaseException as exc:  # noqa: BLE001 - handed to the feeding thread, raised there
            self.error = exc

    def feed(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self.thread.is_alive():
                raise RuntimeError(f"the {self.o.rung.name} encoder stopped")
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop without flushing (an error or the budget elsewhere): the thread ends at its next frame."""
        self.stop.set()
        try:
            self.q.put_nowait(_RungWorker.END)
        except queue.Full:
            pass
        self.thread.join(timeout=30)


def _lead_in(packets: list[av.Packet], first: int) -> list[av.Packet]:
    """A span's first packets with their decode times moved up to its first picture.

    x264's B-frames put the first DTS a couple of frames before the first PTS (0.17 s at 12 fps), while
    the audio starts with the picture. hls.js's remuxer counts the timeline from the first video DTS
    (its older releases normalise every PTS against it) or clamps a DTS before the start to 0 (newer
    ones), so the first picture landed after t=0 and the gap controller met a hole there. MPEG-TS has
    no edit list, and moving the PTS would move the picture off its sound; so the packets that decode
    at or before the first picture (the IDR and the references it is reordered with) get their DTS
    spread over [first PTS, the DTS of `packets[-1]`), the first packet that decodes later. Decode order
    is kept, every DTS stays at or before its PTS, and from there on nothing changes, so spans still
    join as before. Where the ticks do not allow it (a coarse time base), the encoder's DTS are kept."""
    *held, after = packets
    if not held or after.dts is None:
        return packets
    room = after.dts - first
    new = [first + i * room // len(held) for i in range(len(held))]
    if room < len(held) or any(p.pts is None or d > p.pts for d, p in zip(new, held, strict=True)):
        return packets
    for d, p in zip(new, held, strict=True):
        p.dts = d
    return packets


def _seg_end(starts: list[float], k: int, end_s: float) -> float:
    return starts[k + 1] if k + 1 < len(starts) else end_s


def _flush_audio(o: _RungOutput, packets, i: int, until_s: float) -> int:
    """Mux audio packets whose PTS is before `until_s` into the rung's current file."""
    rate = o.rung.audio_rate
    while i < len(packets) and packets[i][0] / rate < until_s - SPAN_EPSILON:
        o.mux_audio(*packets[i])
        i += 1
    return i


def _encode(enc, frame):
    try:
        return enc.encode(frame)
    except av.error.FFmpegError as exc:
        raise UnsupportedMedia(f"the H.264 encoder refused a frame: {_reason(exc)}", code="unsupported-video") from None


def _chain(first, rest):
    yield first
    yield from rest


# --- progressive MP4 -----------------------------------------------------------------------------

def remux_mp4(ts_paths: list[str], out_path: str) -> dict:
    """One MP4 from a rung's MPEG-TS segments in order: packets copied (no second encode), the
    TS_OFFSET_S taken off (times = the source's), the moov atom written in front (faststart), so a
    browser starts playing before the download ends. Returns {"bytes", "duration_s", "audio"}."""
    if not ts_paths:
        raise ValueError("remux_mp4 needs at least one segment")
    out = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
    streams: dict[str, av.stream.Stream] = {}
    try:
        for path in ts_paths:
            with av.open(str(path)) as src:
                inputs = [s for s in (src.streams.video[:1] + src.streams.audio[:1])]
                for s in inputs:
                    if s.type not in streams:
                        streams[s.type] = out.add_stream_from_template(s)
                for packet in src.demux(inputs):
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's end-of-stream marker
                    tb = packet.time_base
                    offset = round(TS_OFFSET_S / tb)
                    if packet.pts is not None:
                        packet.pts -= offset
                    if packet.dts is not None:
                        packet.dts -= offset
                    packet.stream = streams[packet.stream.type]
                    out.mux(packet)
    except av.error.FFmpegError as exc:
        out.close()
        raise CorruptMedia(f"cannot remux the HLS segments into an MP4: {_reason(exc)}", code="corrupt-video") from None
    out.close()
    with av.open(str(out_path)) as mp4:
        duration = mp4.duration / av.time_base if mp4.duration else 0.0
    return {"bytes": Path(out_path).stat().st_size, "duration_s": round(duration, 6), "audio": "audio" in streams}
