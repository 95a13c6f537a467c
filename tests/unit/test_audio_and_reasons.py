"""Audio-only files are refused as unsupported (at the door when the header tells, else by the stage),
and a decoder's boilerplate ("patches welcome") never reaches a reason (issue 21)."""
from __future__ import annotations

import io
import struct
import zlib

import av
import numpy as np
import pytest

from services.analyze.video import analyze_video
from services.common.errors import HTTPProblem, UnsupportedMedia
from services.ingest.clients import Client
from services.ingest.uploads import accept_upload
from services.media.decoding import decoding
from services.media.mediatypes import audio_only, sniff
from tests.support.audio import AUDIO, audio_bytes
from tests.support.fakes import memory_runtime

AUDIO_REASON = "an audio-only file: mediarelay processes images and videos"
CLIENT = Client("c-audio", "audio tester")
# What the magic bytes tell at once; the others are containers (MP4/MOV/Matroska) a probe tells.
BY_MAGIC = {"mp3": "MP3", "mp3-bare": "MP3", "wav": "WAV", "ogg": "Ogg", "flac": "FLAC", "aiff": "AIFF"}
BY_PROBE = ("m4a", "mov", "mka")


@pytest.mark.parametrize("name", AUDIO)
def test_an_audio_file_is_refused_at_the_door_with_a_reason_a_person_reads(name):
    rt = memory_runtime()
    with pytest.raises(HTTPProblem) as refused:
        accept_upload(rt, CLIENT, audio_bytes(name), f"song.{name}", None)
    assert refused.value.status == 415
    assert AUDIO_REASON in refused.value.detail
    assert rt.blobs.objects == {}  # nothing stored, no job made
    assert rt.bus.on("media-ingested") == []


@pytest.mark.parametrize("name", BY_MAGIC)
def test_audio_formats_are_told_from_their_first_bytes(name):
    head = audio_bytes(name)[:64]
    assert sniff(head) is None
    assert audio_only(head) == BY_MAGIC[name]


@pytest.mark.parametrize("head", [b"\xff\xd8\xff\xe0" + bytes(60), b"RIFF\0\0\0\0WEBPVP8 " + bytes(48), bytes(64),
                                  b"OggS\x00\x02" + bytes(20) + b"\x01\x2a\x80theora" + bytes(30)])
def test_images_video_and_unknown_bytes_are_not_called_audio(head):
    assert audio_only(head) is None


@pytest.mark.parametrize("name", BY_PROBE)
def test_an_audio_only_container_fails_analysis_as_unsupported_not_corrupt(name):
    """Signed-URL uploads never pass the door: the stage says the same."""
    with pytest.raises(UnsupportedMedia) as failed:
        analyze_video(audio_bytes(name), "." + name, 600, 36000)
    assert failed.value.error_class == "unsupported-media"
    assert failed.value.reason == AUDIO_REASON


def png_video_ffmpeg_will_not_decode() -> bytes:
    """A QuickTime video of PNG frames whose headers say RGB at 1 bit per sample: FFmpeg's PNG
    decoder answers AVERROR_PATCHWELCOME ("Not yet implemented in FFmpeg, patches welcome")."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mov") as c:
        s = c.add_stream("png", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "rgb24"
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    raw = bytearray(buf.getvalue())
    i = 0
    while (i := raw.find(b"IHDR", i)) > 0:
        raw[i + 12] = 1  # bit depth 1 with colour type 2 (RGB)
        raw[i + 17:i + 21] = struct.pack(">I", zlib.crc32(bytes(raw[i:i + 17])))
        i += 4
    return bytes(raw)


BOILERPLATE = ("patches welcome", "patch welcome", "ffmpeg", "errno", "please report", "should not have happened")


def test_a_broken_videos_reason_carries_no_library_boilerplate():
    raw = png_video_ffmpeg_will_not_decode()
    with pytest.raises(UnsupportedMedia) as failed:
        analyze_video(raw, ".mov", 600, 36000)
    reason = failed.value.reason
    assert reason.startswith("the video stream uses a codec feature we cannot decode")
    assert not any(b in reason.lower() for b in BOILERPLATE), reason


def test_the_decoder_guard_strips_the_same_boilerplate():
    """The one guard for decoder calls (images, first frames) sees the real PyAV exception."""
    with pytest.raises(UnsupportedMedia) as failed, decoding("the clip"):
        with av.open(io.BytesIO(png_video_ffmpeg_will_not_decode())) as c:
            for _ in c.decode(video=0):
                pass
    reason = failed.value.reason
    assert reason.startswith("the clip uses a variant that is not supported")
    assert not any(b in reason.lower() for b in BOILERPLATE), reason
