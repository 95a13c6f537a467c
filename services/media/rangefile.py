"""A source video read by byte ranges, never downloaded whole: what a segment's child decodes
comes over a pipe from its stage's process, which reads those ranges from storage.

The bounded child (sandbox.py) holds no storage client (invariant 9: storage calls stay in the
stage's process), so the stage hands `sandbox.run` a seekable binary file object over the
source (services/pipeline/blobs.py: ranged GCS reads) and puts a `RangeSource` among the work's
arguments where a path would go. In the child each `open()` of it is a file object of its own
(own position; FFmpeg may open the source twice, e.g. audio and video) whose reads are requests
(offset, size) to the stage's `serve` loop. A segment thus reads the container's index and its
own span (plus what the decoder needs before it), and nothing of the source touches the disk.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

# What the child asks for at once: FFmpeg reads 32 KiB blocks and seeks often (interleaved streams,
# a second open for audio), so a small buffer wastes little; the stage side buffers storage reads.
CHILD_BUFFER_BYTES = 64 << 10

_channel: _Channel | None = None  # set in the child by attach()


@dataclass(frozen=True)
class RangeSource:
    """Stands for the source among a child's arguments (picklable); `size` in bytes."""

    size: int

    def open(self) -> io.BufferedReader:
        if _channel is None:
            raise RuntimeError("a RangeSource is opened only inside a media child that was given the source")
        return io.BufferedReader(_RangeFile(_channel, self.size), buffer_size=CHILD_BUFFER_BYTES)


def opened(source):
    """What FFmpeg opens: a path as a string, a RangeSource as a new file object of its own."""
    return source.open() if isinstance(source, RangeSource) else str(source)


class _Channel:
    """The child's end of the pipe; one request at a time (the child's readers share it)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.lock = threading.Lock()

    def read(self, offset: int, size: int) -> bytes:
        with self.lock:
            self.conn.send((offset, size))
            return self.conn.recv_bytes()


class SeekableRaw(io.RawIOBase):
    """A read-only file of `size` bytes at position `pos`: what PyAV needs of a file object.
    Subclasses fill `readinto` from wherever the bytes are (a pipe here, storage in the pipeline)."""

    size: int
    pos: int

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos


class _RangeFile(SeekableRaw):
    def __init__(self, channel: _Channel, size: int):
        self.channel, self.size, self.pos = channel, size, 0

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = self.channel.read(self.pos, want)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def attach(conn: Connection | None) -> None:
    """In the child: the pipe every RangeSource reads through."""
    global _channel
    _channel = _Channel(conn) if conn is not None else None


class Server:
    """In the stage's process, beside the waiting child: a thread answering its range requests
    from `source` (a seekable binary file object) until the child's end closes. A read that
    fails (storage unreachable) closes the pipe and is kept in `error`: the stage raises it (a
    retry), not the decoder's complaint about a source that ended early."""

    def __init__(self, conn: Connection, source):
        self.conn, self.source = conn, source
        self.served = 0  # bytes handed to the child
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="range-source", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                offset, size = self.conn.recv()
            except (EOFError, OSError):
                return
            try:
                self.source.seek(offset)
                data = self.source.read(size)
            except Exception as exc:  # noqa: BLE001 - kept for the stage to raise as what it is
                self.error = exc
                self.conn.close()
                return
            try:
                self.conn.send_bytes(data)
            except OSError:
                return
            self.served += len(data)

    def stop(self) -> None:
        """After the child has ended (its end closed, so the thread's recv returns)."""
        self.thread.join(5)
        self.conn.close()
