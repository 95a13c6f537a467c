"""All video I/O of analyze and render, through PyAV (FFmpeg): open, probe, decode forward, display.

One home for the facts both stages need, so neither imports the other's internals:
- `VideoFile(source)` opens a path, bytes (read in place through a memoryview, never copied)
  or a binary file object; what FFmpeg raises becomes CorruptMedia / UnsupportedMedia with a
  reason written for a person.
- `probe()` reads the container and its streams before any frame is decoded (the display
  rotation lives in frame side data in FFmpeg 8, so the first frame is decoded for it).
- `frames()` decodes forward, threaded, and yields each frame with its presentation time from
  its PTS (stream time base; the container's start time, e.g. an edit-list delay, is kept:
  times are on the player's clock). VideoLimits are checked from the header and again per frame.
- `display_rgb()` turns a frame into what a player shows: square pixels (SAR applied) and
  rotated by the display matrix.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..common.errors import CorruptMedia, LimitExceeded, OverLimit, UnsupportedMedia
from .decoding import clean
from .mediatypes import AUDIO_ONLY
from .rangefile import RangeSource

# FFmpeg's AVColorTransferCharacteristic values that mean HDR (the others are SDR curves).
HDR_TRANSFERS = {16: "pq", 18: "hlg"}
TRANSFER_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "srgb",
                  14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
PRIMARIES_NAMES = {1: "bt709", 5: "bt470bg", 6: "smpte170m", 9: "bt2020", 11: "smpte431", 12: "smpte432"}
# Planar 8-bit YUV: the detector reads Y, U and V straight from the decoder's buffers.
PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv440p", "yuvj440p"}
# Span boundaries are keyframe times in seconds (rounded to microseconds): a frame within half a
# millisecond of a boundary is on it.
SPAN_EPSILON = 5e-4
VFR_TOLERANCE = 0.02  # frame intervals differing by more than 2 % from one another: variable frame rate


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float = float("inf")
    max_frames: int = 10**12
    max_frame_pixels: int = 7680 * 4320


@dataclass(frozen=True)
class PacketIndex:
    """What the packets say, without decoding: the video's keyframe times (seconds, sorted), where the
    video stream's data ends, and where each audio/video stream's data ends (by stream index)."""
    keyframes: list[float]
    video_end_s: float
    stream_ends: dict[int, float]


@dataclass
class Frame:
    index: int
    time: float  # presentation time, seconds, from the PTS
    frame: av.VideoFrame


def _reason(exc: Exception) -> str:
    """FFmpeg's words for an error, for a person: its boilerplate ("patches welcome") left out."""
    text = clean(getattr(exc, "strerror", None) or "")
    return text.lower() if text else "unreadable data"


def _seconds(value, time_base) -> float | None:
    return float(value * time_base) if value is not None and time_base else None


def _ratio(r) -> list[int] | None:
    return [r.numerator, r.denominator] if r else None


class VideoFile:
    """An open video. Use as a context manager; `frames()` may be called once."""

    def __init__(self, source: str | Path | bytes | io.IOBase | RangeSource, *, threads: int = 0,
                 skip_loop_filter: Mapping[str, str] | None = None):
        if isinstance(source, bytes):
            source = io.BytesIO(source)  # shares the bytes object's buffer until written to: no copy
        if isinstance(source, RangeSource):
            source = source.open()  # read by ranges from the stage's process (rangefile.py)
        try:
            self.container = av.open(source if not isinstance(source, Path) else str(source), "r")
        except av.error.DemuxerNotFoundError:
            raise UnsupportedMedia("no container format we read matches this file", code="unsupported-video") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise CorruptMedia(f"cannot open the video container: {_reason(exc)}", code="corrupt-video") from None
        if not self.container.streams.video:
            sound = bool(self.container.streams.audio)
            self.close()
            if sound:  # a song or a voice memo in a video container: valid, just not ours
                raise UnsupportedMedia(AUDIO_ONLY, code="audio-only")
            raise CorruptMedia("the file has no video stream", code="corrupt-video")
        self.stream = self.container.streams.video[0]
        cc = self.stream.codec_context
        if cc is None or not cc.name:
            self.close()
            raise UnsupportedMedia("the video stream's codec has no decoder here", code="unsupported-video")
        # Frame and slice threads, sized by FFmpeg from the CPUs this process may run on.
        cc.thread_type = "AUTO"
        cc.thread_count = threads
        if skip_loop_filter and cc.name in skip_loop_filter:
            # Deblocking skipped on the frames FFmpeg's AVDiscard value names ("noref", "all"): only
            # for the codecs the caller names, where the bench measured the same cuts with and without.
            cc.options = {"skip_loop_filter": skip_loop_filter[cc.name]}
        self._first: av.VideoFrame | None = None
        self._decoder: Iterator[av.VideoFrame] | None = None

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    # -- facts from the container ----------------------------------------------------------------
    @property
    def sar(self) -> Fraction:
        sar = self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio
        return Fraction(sar) if sar and sar > 0 else Fraction(1)

    @property
    def time_base(self) -> Fraction:
        """The video stream's time base, which every frame and packet time is counted in."""
        tb = self.stream.time_base
        if tb is None:  # FFmpeg's demuxers set one; a file without it has no readable frame times
            raise CorruptMedia("the video stream declares no time base, so its frame times cannot be read",
                               code="corrupt-video")
        return tb

    def _first_frame(self) -> av.VideoFrame | None:
        if self._decoder is None:
            self._decoder = self._decode()
            self._first = next(self._decoder, None)
        return self._first

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self.container.decode(self.stream)
        except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError) as exc:
            raise UnsupportedMedia(f"the video stream uses a codec feature we cannot decode: {_reason(exc)}",
                                   code="unsupported-video") from None
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"the video stream cannot be decoded: {_reason(exc)}", code="corrupt-video") from None

    @property
    def rotation(self) -> int:
        """Clockwise degrees a player turns the picture (FFmpeg reports the display matrix counter-clockwise)."""
        first = self._first_frame()
        angle = (-int(round(first.rotation))) % 360 if first is not None else 0
        return angle if angle in (0, 90, 180, 270) else 0

    def display_size(self) -> tuple[int, int]:
        """Upright width and height a player shows: width scaled by the SAR, then the rotation."""
        cc = self.stream.codec_context
        w, h = display_dims(cc.width, cc.height, self.sar)
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def check_header(self, limits: VideoLimits) -> None:
        cc = self.stream.codec_context
        if cc.width <= 0 or cc.height <= 0:
            raise CorruptMedia("the video stream declares no frame size", code="corrupt-video")
        if cc.width * cc.height > limits.max_frame_pixels:
            raise OverLimit(f"video frames are {cc.width}x{cc.height}, over MAX_VIDEO_FRAME_PIXELS={limits.max_frame_pixels}",
                            "MAX_VIDEO_FRAME_PIXELS", "too-many-pixels")
        duration = self.duration_s()
        if duration is not None and duration > limits.max_seconds:
            raise OverLimit(f"video lasts {duration:.1f} s, over MAX_VIDEO_SECONDS={limits.max_seconds:g}",
                            "MAX_VIDEO_SECONDS", "too-long")
        if self.stream.frames and self.stream.frames > limits.max_frames:
            raise OverLimit(f"video has {self.stream.frames} frames, over MAX_VIDEO_FRAMES={limits.max_frames}",
                            "MAX_VIDEO_FRAMES", "too-many-frames")

    def duration_s(self) -> float | None:
        d = _seconds(self.stream.duration, self.stream.time_base)
        if d is None and self.container.duration:
            d = self.container.duration / av.time_base
        return d

    def start_s(self) -> float:
        s = _seconds(self.stream.start_time, self.stream.time_base)
        if s is None and self.container.start_time is not None:
            s = self.container.start_time / av.time_base
        return s or 0.0

    def probe(self) -> dict:
        """Container and stream facts, before decoding (the rotation from the first frame's display matrix)."""
        c, v = self.container, self.stream
        cc = v.codec_context
        fmt = cc.format
        depth = max((comp.bits for comp in fmt.components), default=8) if fmt else None
        trc = int(cc.color_trc or 0)
        video = {
            "codec": cc.name,
            "profile": cc.profile or None,
            "pix_fmt": fmt.name if fmt else None,
            "bit_depth": depth,
            "color_transfer": TRANSFER_NAMES.get(trc),
            "color_primaries": PRIMARIES_NAMES.get(int(cc.color_primaries or 0)),
            "hdr": HDR_TRANSFERS.get(trc),
            "coded_width": cc.width,
            "coded_height": cc.height,
            "sar": _ratio(self.sar),
            "dar": _ratio(Fraction(cc.width, cc.height) * self.sar) if cc.width and cc.height else None,
            "rotation": self.rotation,
            "frame_rate": round(float(v.average_rate), 3) if v.average_rate else None,
            "start_s": round(self.start_s(), 6),
            "duration_s": _round(self.duration_s()),
            "bit_rate": cc.bit_rate or None,
        }
        audio = []
        for a in c.streams.audio:
            ac = a.codec_context
            audio.append({
                "codec": ac.name if ac else None,
                "profile": (ac.profile or None) if ac else None,
                "channels": ac.layout.nb_channels if ac and ac.layout else None,
                "channel_layout": ac.layout.name if ac and ac.layout else None,
                "sample_rate": ac.sample_rate if ac else None,
                "start_s": _round(_seconds(a.start_time, a.time_base)),
                "duration_s": _round(_seconds(a.duration, a.time_base)),
                "bit_rate": (ac.bit_rate or None) if ac else None,
            })
        others = [{"type": s.type, "codec": s.codec_context.name if s.codec_context else None}
                  for s in c.streams if s.type not in ("video", "audio")]
        container = {
            "format": c.format.name,
            "duration_s": _round(c.duration / av.time_base if c.duration else None),
            "start_s": round(c.start_time / av.time_base, 6) if c.start_time is not None else 0.0,
            "bit_rate": c.bit_rate or None,
            "video_streams": len(c.streams.video),
        }
        return {"container": container, "video": video, "audio": audio, "other_streams": others}

    # -- decoding ------------------------------------------------------------------------------
    def packet_index(self) -> PacketIndex:
        """The keyframe times and where each stream's data really ends, from the packets: demuxed, not decoded.

        Call before any decoding (it reads the file from the start)."""
        tb = self.time_base
        keys: list[float] = []
        ends: dict[int, float] = {}
        timed = [s for s in self.container.streams if s.type in ("video", "audio") and s.time_base]
        try:
            for p in self.container.demux(*timed):
                if p.pts is None:
                    continue
                t = float(p.pts * p.time_base)
                i = p.stream.index
                ends[i] = max(ends.get(i, t), t + float((p.duration or 0) * p.time_base))
                if i == self.stream.index and p.is_keyframe:
                    keys.append(float(p.pts * tb))
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"the video's packets cannot be read: {_reason(exc)}", code="corrupt-video") from None
        self.container.seek(0)
        return PacketIndex(sorted(keys), max(0.0, ends.get(self.stream.index, 0.0)), ends)

    def keyframe_times(self) -> tuple[list[float], float]:
        """The video stream's keyframe times and its end, from the packet index (see `packet_index`)."""
        index = self.packet_index()
        return index.keyframes, index.video_end_s

    def check_complete(self, index: PacketIndex, tolerance_s: float) -> None:
        """CorruptMedia when the data ends more than `tolerance_s` before what the header declares.

        A file cut short with its index in front (moov first, as phones and web uploads write MP4)
        still opens, and its index still promises the whole length: only the packets tell that the
        data stops early. Each audio and video stream that declares its duration is held to it
        (a stream is where a cut shows); where none does (Matroska), the container's duration is,
        against the last packet of any stream (an audio track may rightly outlast the picture).
        We fail the job rather than complete it flagged: a half video under `completed` is what
        consumers who never read a new flag would publish; `failed` is an outcome every one handles."""
        declared: list[tuple[float, float]] = []  # (length the header declares, length the data has)
        for s in self.container.streams:
            if s.index in index.stream_ends and s.duration and s.time_base:
                start = float(s.start_time * s.time_base) if s.start_time is not None else self.start_s()
                declared.append((float(s.duration * s.time_base), index.stream_ends[s.index] - start))
        c = self.container
        if not declared and c.duration and index.stream_ends:
            start = c.start_time / av.time_base if c.start_time is not None else 0.0
            declared.append((c.duration / av.time_base, max(index.stream_ends.values()) - start))
        for want, have in declared:
            if want - have > tolerance_s:
                raise CorruptMedia(f"the file is truncated: its data ends at {max(have, 0.0):.1f} s of the {want:.1f} s its "
                                   f"header declares (more than VIDEO_TRUNCATION_TOLERANCE_SECONDS={tolerance_s:g} short)",
                                   code="truncated-video")

    def frames(self, limits: VideoLimits = VideoLimits(), check: Callable[[int], None] | None = None,
               start_s: float | None = None, end_s: float | None = None) -> Iterator[Frame]:
        """Every frame in presentation order with its PTS time; LimitExceeded past a limit.

        With `start_s`/`end_s`, only the frames shown in [start_s, end_s): decoding starts at the
        keyframe at or before `start_s` (a seek) and stops at the first frame at or past `end_s`;
        `Frame.index` then counts from the span's first frame. `check(n)` is called every few
        frames (the caller's time budget)."""
        self._first_frame()
        if start_s is not None and start_s > self.start_s() + SPAN_EPSILON:
            self._seek(start_s)
        tb = self.stream.time_base
        rate = float(self.stream.average_rate or self.stream.guessed_rate or 25)
        first = self._first
        if first is None:
            raise CorruptMedia("the video stream has no decodable frame", code="corrupt-video")
        end_limit = self.start_s() + limits.max_seconds
        last_t = None
        n = 0
        for frame in _chain(first, self._decoder):
            pts = frame.pts if frame.pts is not None else frame.dts
            t = float(pts * tb) if pts is not None and tb else (last_t + 1 / rate if last_t is not None else 0.0)
            if last_t is not None and t <= last_t:  # a broken timestamp: keep the order a player would show
                t = last_t + 1 / rate
            n += 1
            if n > limits.max_frames:
                raise LimitExceeded(f"video has more than MAX_VIDEO_FRAMES={limits.max_frames} frames", code="too-many-frames")
            if t > end_limit:
                raise LimitExceeded(f"video runs past {t:.1f} s, over MAX_VIDEO_SECONDS={limits.max_seconds:g}", code="too-long")
            if frame.width * frame.height > limits.max_frame_pixels:
                raise LimitExceeded(f"a video frame is {frame.width}x{frame.height}, over MAX_VIDEO_FRAME_PIXELS="
                                    f"{limits.max_frame_pixels}", code="too-many-pixels")
            if check is not None and n % 48 == 0:
                check(n)
            last_t = t
            if start_s is not None and t < start_s - SPAN_EPSILON:
                n -= 1  # before the span: decoded only to reach it
                continue
            if end_s is not None and t >= end_s - SPAN_EPSILON:
                return
            yield Frame(n - 1, t, frame)

    def _seek(self, start_s: float) -> None:
        """Position the decoder on the keyframe at or before `start_s` (frames come out from there)."""
        tb = self.time_base
        try:
            self.container.seek(int(math.floor(start_s / tb)), stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"cannot seek to {start_s:.3f} s in the video: {_reason(exc)}", code="corrupt-video") from None
        self._first = None
        self._decoder = self._decode()
        self._first = next(self._decoder, None)

    def frame_duration(self, frame: av.VideoFrame) -> float:
        """How long a frame is shown, from its own duration, else the average rate."""
        tb = self.stream.time_base
        if frame.duration and tb:
            return float(frame.duration * tb)
        rate = float(self.stream.average_rate or self.stream.guessed_rate or 25)
        return 1 / rate


def _chain(first, rest):
    yield first
    yield from rest


def _round(x: float | None, digits: int = 3) -> float | None:
    return round(x, digits) if x is not None and math.isfinite(x) else None


def display_dims(width: int, height: int, sar: Fraction) -> tuple[int, int]:
    """Square-pixel size before rotation: the SAR stretches the width (a player keeps the height)."""
    return max(1, round(width * sar)), height


def yuv_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V as uint8 arrays, views of the decoder's buffers when the format allows (no copy)."""
    if frame.format.name not in PLANAR_8BIT:
        frame = frame.reformat(format="yuv420p")
    out = []
    for plane in frame.planes[:3]:
        a = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        out.append(a[:, :plane.width])
    return out[0], out[1], out[2]


def display_rgb(frame: av.VideoFrame, sar: Fraction, rotation: int, width: int | None = None) -> np.ndarray:
    """The frame as a player shows it, as RGB: SAR applied, rotated clockwise by `rotation`.

    With `width`, the upright picture is scaled (by swscale, area filter) to that width at its display aspect."""
    dw, dh = display_dims(frame.width, frame.height, sar)
    if width:
        upright_w, upright_h = (dh, dw) if rotation in (90, 270) else (dw, dh)
        scale = min(1.0, width / upright_w)
        dw, dh = max(1, round(dw * scale)), max(1, round(dh * scale))
        del upright_h
    interp = "AREA" if dw * dh <= frame.width * frame.height else "BICUBIC"
    rgb = frame.to_ndarray(format="rgb24", width=dw, height=dh, interpolation=interp)
    if rotation == 90:
        return cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    if rotation == 180:
        return cv2.rotate(rgb, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return rgb
