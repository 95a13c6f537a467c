"""A segment's child reads the source by byte ranges through its stage's process
(services/media/rangefile.py, sandbox.run's `source`): the same analysis as from a file on
disk, only its own span's bytes (plus the index and what the decoder needs before it), and a
source that cannot be read is a storage problem (retried), not a corrupt video."""
from __future__ import annotations

import io
import time

import pytest

from services.analyze.segmented import analyze_span
from services.common.errors import TransientError
from services.media import sandbox
from services.media.rangefile import RangeSource
from services.media.video import VideoFile, VideoLimits
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SIZE = (320, 180)
LIMITS = VideoLimits(600, 36000)
CLIP = ClipSpec("ranged", [ShotSpec("astronaut", 120), ShotSpec("coffee", 120), ShotSpec("rocket", 120, "pan", 3),
                           ShotSpec("chelsea", 120), ShotSpec("camera", 120)], SIZE, audio=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranged") / "clip.mp4"
    write_clip(CLIP, path, SIZE, keyframes=range(0, 600, 24))
    return path


def _limits(seconds: float = 120.0) -> sandbox.ChildLimits:
    return sandbox.ChildLimits(512 * 2**20, 120, time.monotonic() + seconds, f"the test's deadline of {seconds:g} s")


def _span(_raw: bytes, source, start_s: float, end_s: float) -> dict:
    return analyze_span(source, start_s, end_s, 1.0, LIMITS)


def _duration(path) -> float:
    with VideoFile(path) as video:
        return float(video.duration_s() or 0)


def test_a_span_read_by_ranges_is_analysed_as_from_the_file_and_reads_a_fraction_of_it(clip):
    size = clip.stat().st_size
    duration = _duration(clip)
    start, end = duration * 0.6, duration * 0.8
    from_disk = sandbox.run(_span, b"", str(clip), start, end, limits=_limits())
    served: list[int] = []
    with open(clip, "rb") as f:
        ranged = sandbox.run(_span, b"", RangeSource(size), start, end, limits=_limits(), source=f, served=served)
    assert ranged == from_disk
    # A fifth of the video (plus the overlap and the keyframe before it) and the index: far from all of it.
    assert 0 < served[0] < size * 0.5, (served, size)


class _FailingStorage(io.BytesIO):
    """Storage that answers the first reads, then is unreachable."""

    def __init__(self, data: bytes, good_reads: int):
        super().__init__(data)
        self.good_reads = good_reads

    def read(self, size=-1):
        self.good_reads -= 1
        if self.good_reads < 0:
            raise TransientError("storage answered 503 for a range of the source")
        return super().read(size)


def test_a_source_storage_cannot_serve_is_a_retry_not_a_corrupt_video(clip):
    data = clip.read_bytes()
    with pytest.raises(TransientError, match="503"):
        sandbox.run(_span, b"", RangeSource(len(data)), 0.0, 5.0, limits=_limits(), source=_FailingStorage(data, 2))


def test_jumping_between_streams_fetches_each_block_once_and_reads_the_right_bytes():
    from services.pipeline.blobs import RangedObject

    data = bytes(range(256)) * (12 * 4096)  # 12 MiB
    calls: list[tuple[int, int]] = []

    def fetch(start, n):
        calls.append((start, n))
        return data[start:start + n]

    f = RangedObject(fetch, len(data), 2**20, 4)
    for i in range(100):  # video here, audio ten megabytes on: a badly interleaved file
        for base in (0, 10 * 2**20):
            pos = base + i * 4096
            f.seek(pos)
            assert f.read(32768) == data[pos:pos + 32768]
    assert sorted(calls) == [(0, 2**20), (10 * 2**20, 2**20)]
    f.seek(len(data) - 10)
    assert f.read(100) == data[-10:] and f.read(1) == b""
