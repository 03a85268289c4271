"""Byte streams of possibly compressed inputs: bounded, linear, and honest about a cut tail.

Three properties every reader relies on:
* a decompressed stream is pulled on demand in small pieces, so a decompression bomb costs
  only what the reader asks for (the readers bound what they ask for: `max_record_bytes`,
  `max_file_bytes`), and the zstd path stays linear in its output;
* a file cut short (a truncated .gz or .zst) ends the stream where the data ends instead of
  raising from inside a read-ahead buffer, so every complete record before the cut is kept;
  `TruncationGuard.error` then says why it ended;
* lines longer than a limit are skipped without ever being held in memory (`bounded_lines`).
"""
from __future__ import annotations

import gzip
import io
import zlib
from typing import IO, Iterator

import zstandard

TRUNCATION_ERRORS = (EOFError, zlib.error, zstandard.ZstdError)


def open_text_stream(path: str) -> IO[bytes]:
    """Open a possibly compressed file as a binary stream, chosen by extension."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst") or path.endswith(".zstd"):
        return io.BufferedReader(ZstdStream(open(path, "rb")))
    return open(path, "rb")


class ZstdStream(io.RawIOBase):
    """Zstandard frames, decompressed; unlike zstandard's stream_reader, a cut file raises EOFError.

    Compressed input is fed `feed` bytes at a time and only when the previous output was
    consumed, so one call never inflates more than a small piece (zstd reaches ~32000:1), and
    the output is handed out through a memoryview (no re-slicing copies: linear time).
    """

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 20, feed: int = 1 << 10) -> None:
        self.raw, self.chunk, self.feed = raw, chunk, feed
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        self.in_frame = False  # bytes of the current frame were fed and its end not seen yet
        self.input = memoryview(b"")
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        while not self.pending:
            if not self.input:
                data = self.raw.read(self.chunk)
                if not data:
                    if self.in_frame:
                        raise EOFError("zstd file ended in the middle of a frame")
                    return 0
                self.input = memoryview(data)
            piece, self.input = self.input[:self.feed], self.input[self.feed:]
            self.pending = memoryview(self.decompressor.decompress(piece))
            self.in_frame = not self.decompressor.eof
            if self.decompressor.eof:
                self.input = memoryview(self.decompressor.unused_data + bytes(self.input))
                self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def close(self) -> None:
        self.raw.close()
        super().close()


class TruncationGuard(io.RawIOBase):
    """Ends a decompressing stream where its input was cut, instead of raising; `error` says why.

    It reads with `read1`, one underlying read at a time, so nothing already decompressed is
    lost when the next read finds the cut (a buffered `readinto` drops what it had copied).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.error: str | None = None
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Forward only (as readers of a decompressed stream skip); reads what it skips."""
        target = offset if whence == io.SEEK_SET else self.position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.position:
            raise io.UnsupportedOperation("a decompressed stream seeks forward only")
        while self.position < target and self.read(min(target - self.position, 1 << 20)):
            pass
        return self.position

    def readinto(self, buffer: bytearray) -> int:
        if self.error is not None:
            return 0
        try:
            data = self.stream.read1(len(buffer)) if hasattr(self.stream, "read1") else self.stream.read(len(buffer))
        except TRUNCATION_ERRORS as error:
            self.error = str(error) or type(error).__name__
            return 0
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of `stream`; a line over `limit` bytes is skipped while reading and given as None."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 20)
            yield None
        else:
            yield line
