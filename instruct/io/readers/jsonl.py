"""JSON Lines, plain or compressed (.gz, .zst), one record per line.

Every line becomes a document or a reject naming `file:line`: `invalid_utf8`, `invalid_json`
(including nesting too deep to parse), `invalid_unicode` (a lone UTF-16 surrogate such as
"\\ud800": valid JSON, but no UTF-8 text can hold it), `not_an_object`, `missing_text_field`,
`too_large` (over `read.max_record_bytes`, skipped while reading) and, for a cut compressed
file, one `truncated_file` for the lost tail after every complete line was kept.
"""
from __future__ import annotations

import io
import json
import re
from typing import Any, Iterator

from instruct.io.readers.base import ReadBatch, Reader, Reject, WorkUnit
from instruct.io.streams import TruncationGuard, ZstdStream, bounded_lines, open_text_stream

__all__ = ["JsonlReader", "ZstdStream", "open_text_stream", "parse_json_line"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json_line(line: bytes) -> tuple[Any, str | None, str, str]:
    """(JSON object, reject reason or None, detail, decoded text) of one JSON line: a record must be an object."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, "invalid_utf8", str(error), line.decode("utf-8", "replace")
    try:
        value = json.loads(decoded)
    except json.JSONDecodeError as error:
        return None, "invalid_json", error.msg, decoded
    except RecursionError:
        return None, "invalid_json", "nested too deeply", decoded[:1000]
    if _SURROGATE_ESCAPE.search(line):  # cheap pre-check; only such lines pay for the exact one
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as error:
            return None, "invalid_unicode", f"lone surrogate {error.object[error.start]!r}", decoded
        except RecursionError:
            return None, "invalid_json", "nested too deeply", decoded[:1000]
    if not isinstance(value, dict):
        return None, "not_an_object", type(value).__name__, decoded
    return value, None, "", decoded


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
        """(file:line, line, JSON object) for every record; undecodable, oversized lines and cut files as rejects."""
        limit = self.config.max_record_bytes
        line_number = 0
        try:
            with open_text_stream(path) as raw:
                guard = TruncationGuard(raw)
                for line in bounded_lines(io.BufferedReader(guard), limit):
                    line_number += 1
                    where = f"{path}:{line_number}"
                    if line is None:
                        yield self.reject(where, "too_large", f"line over read.max_record_bytes ({limit:,} bytes)")
                        continue
                    if guard.error is not None and not line.endswith(b"\n"):
                        line_number -= 1  # the cut line is the truncated tail, reported below
                        break
                    if not line.strip():
                        continue
                    record, reason, detail, decoded = parse_json_line(line)
                    if reason is not None:
                        yield self.reject(where, reason, detail, decoded)
                        continue
                    yield where, decoded, record
            if guard.error is not None:
                # a truncated file: every complete line stands, the cut tail is one reject
                yield self.reject(f"{path}:{line_number + 1}", "truncated_file", guard.error)
        except OSError as error:
            yield self.reject(f"{path}:{line_number + 1}", "unreadable_file", str(error) or type(error).__name__)
