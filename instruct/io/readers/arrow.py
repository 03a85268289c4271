"""Arrow IPC files (file or stream format), e.g. our own shards, Ray or `datasets` cache files.

Tables that already have the DOCUMENT, EXAMPLE or PREFERENCE columns pass through unchanged, so
shards from `instruct synth` or a template step can be rebuilt (dedup, decontamination, PII) as
rows of their own kind. Any other table becomes DOCUMENT rows: `text_field` is the text, `id_field` the
id (a content hash when absent), a `url` column the url_or_path, and the other columns go to
`meta`. A row without a string text is a `missing_text_field` reject named `file#row` (0-based).

    read: {format: arrow, paths: ["out/synth/shards/*.arrow"]}
"""
from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Iterator

import pyarrow as pa

from instruct.io.readers.base import InputError, ReadBatch, Reader, Reject, WorkUnit, expand_paths
from instruct.io.shards import iter_batches, read_schema
from instruct.schema import DOCUMENT_SCHEMA, EXAMPLE_SCHEMA, PREFERENCE_SCHEMA, schema_kind

PASSTHROUGH = (PREFERENCE_SCHEMA, EXAMPLE_SCHEMA, DOCUMENT_SCHEMA)


def passthrough_schema(schema: pa.Schema) -> pa.Schema | None:
    """PREFERENCE, EXAMPLE or DOCUMENT when a table already has that schema's columns, else None."""
    for candidate in PASSTHROUGH:
        if set(candidate.names) <= set(schema.names):
            return candidate
    return None


class TableReader(Reader):
    """Shared by the arrow and parquet readers: subclasses open a file's schema and batches."""

    def file_schema(self, path: str) -> pa.Schema:
        raise NotImplementedError

    def file_batches(self, path: str) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    @cached_property
    def schema(self) -> pa.Schema:
        """PREFERENCE, EXAMPLE or DOCUMENT, decided by the first input; every input must agree."""
        first = expand_paths(self.config.paths)[0]
        try:
            return passthrough_schema(self.file_schema(first)) or DOCUMENT_SCHEMA
        except (OSError, pa.ArrowInvalid):
            return DOCUMENT_SCHEMA  # the unreadable file is reported as a reject when its unit runs

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        for path in unit.paths:
            yield from self._read_file(path)

    def _read_file(self, path: str) -> Iterator[ReadBatch]:
        try:
            own = passthrough_schema(self.file_schema(path))
        except (OSError, pa.ArrowInvalid) as error:
            yield self._failed(f"{path}#0", "unreadable_file", error)
            return
        if own is not None and own != self.schema:
            raise InputError(f"{path}: holds {schema_kind(own)} rows but the first input holds "
                             f"{schema_kind(self.schema)} rows; "
                             "build them separately")
        row = 0
        try:
            for batch in self.file_batches(path):
                table = pa.Table.from_batches([batch])
                if own is not None:
                    yield ReadBatch(table.select(own.names).cast(own))
                else:
                    yield from self.batches(self._documents(path, table, row))
                row += batch.num_rows
        except (OSError, pa.ArrowInvalid) as error:
            yield self._failed(f"{path}#{row}", "truncated_file", error)

    def _failed(self, where: str, reason: str, error: Exception) -> ReadBatch:
        """The rest of a file that cannot be read, as one reject."""
        return ReadBatch(pa.Table.from_pylist([], schema=self.schema), [self.reject(where, reason, str(error))])

    def _documents(self, path: str, table: pa.Table, first_row: int) -> Iterator[dict | Reject]:
        text_field, id_field = self.config.text_field, self.config.id_field
        for offset, record in enumerate(table.to_pylist()):
            where = f"{path}#{first_row + offset}"
            text = record.pop(text_field, None)
            if not isinstance(text, str):
                yield self.reject(where, "missing_text_field", f"no string field {text_field!r}",
                                  json.dumps(record, default=str, ensure_ascii=False))
                continue
            record_id = record.pop(id_field, None)
            url = record.pop("url", None)
            yield self.document(text, url or where, record_id, _plain(record))


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """Meta must be JSON: bytes and other Arrow values become strings."""
    return json.loads(json.dumps(record, default=str, ensure_ascii=False))


class ArrowReader(TableReader):
    format = "arrow"
    default_source = "arrow"

    def file_schema(self, path: str) -> pa.Schema:
        return read_schema(path)

    def file_batches(self, path: str) -> Iterator[pa.RecordBatch]:
        return iter_batches(path)
