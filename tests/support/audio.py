"""Audio-only files, made with PyAV (FFmpeg's own muxers and encoders): half a second of a tone."""
from __future__ import annotations

import io

import av
import numpy as np

# name -> (FFmpeg muxer, encoder, sample rate, muxer options); each as a player or phone writes it.
AUDIO = {
    "m4a": ("ipod", "aac", 44100, {}),  # ftyp M4A: an MP4 container with one AAC track
    "mov": ("mov", "aac", 44100, {}),  # a QuickTime container with only sound
    "mka": ("matroska", "aac", 44100, {}),  # Matroska audio: EBML like a video .mkv
    "mp3": ("mp3", "libmp3lame", 44100, {}),  # starts with an ID3 tag
    "mp3-bare": ("mp3", "libmp3lame", 44100, {"id3v2_version": "0"}),  # starts with an MPEG audio frame
    "wav": ("wav", "pcm_s16le", 44100, {}),
    "ogg": ("ogg", "libopus", 48000, {}),
    "flac": ("flac", "flac", 44100, {}),
    "aiff": ("aiff", "pcm_s16be", 44100, {}),
}


def audio_bytes(name: str) -> bytes:
    fmt, codec, rate, options = AUDIO[name]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt, options=options) as c:
        s = c.add_stream(codec, rate=rate, layout="mono")
        sample_fmt = s.codec_context.format.name
        tone = np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate) * 0.3
        n = s.codec_context.frame_size or 1024
        for i in range(0, len(tone), n):
            chunk = tone[i:i + n]
            if sample_fmt.startswith("flt"):
                arr = chunk.astype(np.float32)[None]
            elif sample_fmt.startswith("s16"):
                arr = (chunk * 32767).astype(np.int16)[None]
            else:
                arr = (chunk * 2**31 * 0.99).astype(np.int32)[None]
            frame = av.AudioFrame.from_ndarray(arr, format=sample_fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()
