"""JSON Lines, plain or compressed (.gz, .zst), one record per line."""
from __future__ import annotations

import gzip
import io
import json
import zlib
from typing import IO, Iterator

import zstandard

from instruct.io.readers.base import ReadBatch, Reader, Reject, WorkUnit


def open_text_stream(path: str) -> IO[bytes]:
    """Open a possibly compressed file as a binary stream, chosen by extension."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst") or path.endswith(".zstd"):
        return io.BufferedReader(ZstdStream(open(path, "rb")))
    return open(path, "rb")


class ZstdStream(io.RawIOBase):
    """Zstandard frames, decompressed; unlike zstandard's stream_reader, a cut file raises EOFError."""

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 20) -> None:
        self.raw, self.chunk = raw, chunk
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        self.in_frame = False  # bytes of the current frame were fed and its end not seen yet
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        while not self.pending:
            data = self.raw.read(self.chunk)
            if not data:
                if self.in_frame:
                    raise EOFError("zstd file ended in the middle of a frame")
                return 0
            while data:
                self.pending += self.decompressor.decompress(data)
                self.in_frame = not self.decompressor.eof
                data = self.decompressor.unused_data if self.decompressor.eof else b""
                if self.decompressor.eof:
                    self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def close(self) -> None:
        self.raw.close()
        super().close()


class JsonlReader(Reader):
    format = "jsonl"
    default_source = "jsonl"

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        for path in unit.paths:
            yield from self.batches(self._records(path))

    def _records(self, path: str) -> Iterator[dict | Reject]:
        text_field, id_field = self.config.text_field, self.config.id_field
        for item in self.objects(path):
            if isinstance(item, Reject):
                yield item
                continue
            where, decoded, record = item
            text = record.get(text_field)
            if not isinstance(text, str):
                yield self.reject(where, "missing_text_field", f"no string field {text_field!r}", decoded)
                continue
            meta = {k: v for k, v in record.items() if k not in (text_field, id_field)}
            yield self.document(text, where, record.get(id_field), meta)

    def objects(self, path: str) -> Iterator[tuple[str, str, dict] | Reject]:
        """(file:line, line, JSON object) for every record; undecodable lines and cut files as rejects."""
        line_number = 0
        try:
            with open_text_stream(path) as raw:
                for line_number, line in enumerate(io.BufferedReader(raw), start=1):
                    where = f"{path}:{line_number}"
                    if not line.strip():
                        continue
                    try:
                        decoded = line.decode("utf-8")
                    except UnicodeDecodeError as error:
                        yield self.reject(where, "invalid_utf8", str(error), line.decode("utf-8", "replace"))
                        continue
                    try:
                        record = json.loads(decoded)
                    except json.JSONDecodeError as error:
                        yield self.reject(where, "invalid_json", error.msg, decoded)
                        continue
                    if not isinstance(record, dict):
                        yield self.reject(where, "not_an_object", type(record).__name__, decoded)
                        continue
                    yield where, decoded, record
        except (EOFError, zlib.error, zstandard.ZstdError) as error:
            # a truncated file: what was read so far stands, the rest is one reject
            yield self.reject(f"{path}:{line_number + 1}", "truncated_file", str(error) or type(error).__name__)
        except OSError as error:
            yield self.reject(f"{path}:{line_number + 1}", "unreadable_file", str(error) or type(error).__name__)
