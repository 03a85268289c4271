"""The reader contract: inputs become work units, and each unit streams DOCUMENT batches.

A unit is what one worker processes and what resume tracks (one file, or a slice of a file
tree). Every input record ends up either in a batch or in `rejects` with a reason that names
file and line/record, so that read == written + rejected holds for every run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pyarrow as pa

from instruct.config import from_dict, require_positive
from instruct.io.globs import expand_glob, unique_real_paths
from instruct.schema import DOCUMENT_SCHEMA, content_id, dump_meta


class InputError(ValueError):
    """Bad input in --strict mode: one line naming file, line/record and what is wrong."""


@dataclass
class ReadConfig:
    """The `read` section of a recipe."""

    format: str = "jsonl"
    paths: list[str] = field(default_factory=list)
    text_field: str = "text"  # field holding the text (jsonl/parquet/arrow)
    id_field: str = "id"  # field holding the id; a content hash is used when absent
    source: str = ""  # value of the `source` column; defaults to the format's kind (web, books, code)
    batch_size: int = 1000
    max_record_bytes: int = 16 << 20  # a longer record (JSONL line, WARC body) is rejected as too_large, unread
    options: dict[str, Any] = field(default_factory=dict)  # format-specific settings

    def __post_init__(self) -> None:
        require_positive(self, "read", "batch_size", "max_record_bytes")


@dataclass(frozen=True)
class WorkUnit:
    """One independently processable piece of input; `key` names it stably across runs."""

    key: str
    paths: tuple[str, ...]


# Reasons that describe well-formed input a build does not use (counted, never fatal under --strict);
# every other reason means the input is corrupt or does not match the recipe (invalid_json, truncated_file, ...).
EXPECTED_SKIPS = frozenset({
    "http_status", "not_html", "no_main_text",  # crawl records: redirects, errors, images, pages without prose
    "binary", "unknown_language", "language_not_selected", "minified", "vendored_dir", "empty_file",  # code trees
})


@dataclass
class Reject:
    where: str  # "file:line" or "file#record"
    reason: str  # short machine-countable reason, e.g. "invalid_json"
    detail: str = ""  # human detail, e.g. the decoder's message
    text: str | None = None  # the raw record where it could be recovered

    def message(self) -> str:
        return f"{self.where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ReadBatch:
    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)  # also inputs skipped on purpose (binaries, vendored code)


class Reader:
    """Base class: subclasses set `format`, `default_source`, and implement `read_unit`.

    `schema` is what the reader's batches hold: DOCUMENT, unless a reader passes records of
    another schema through (the arrow reader with EXAMPLE shards overrides it per input).
    Format-specific settings (`read.options`) are declared as an `Options` dataclass and
    type-checked like the rest of a recipe (without one they stay a plain dict).
    """

    format: ClassVar[str] = ""
    default_source: ClassVar[str] = "text"
    Options: ClassVar[type | None] = None

    def __init__(self, config: ReadConfig, strict: bool = False) -> None:
        self.config = config
        self.strict = strict
        self.source = config.source or self.default_source
        self.options: Any = (from_dict(self.Options, config.options, where="read.options") if self.Options
                             else dict(config.options))

    @property
    def schema(self) -> pa.Schema:
        return DOCUMENT_SCHEMA

    def units(self) -> list[WorkUnit]:
        """By default one unit per input file, in sorted order."""
        return [WorkUnit(key=unit_key(path), paths=(path,)) for path in expand_paths(self.config.paths)]

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        raise NotImplementedError

    # helpers for subclasses -----------------------------------------------------------------
    def reject(self, where: str, reason: str, detail: str = "", text: str | None = None) -> Reject:
        """Record a bad input; in strict mode stop the run with a one-line error instead.

        Expected skips (EXPECTED_SKIPS: a PNG in a crawl, a vendored folder) are counted the same way
        but never stop a strict run: they are what the input is, not damage to it.
        """
        rejected = Reject(where, reason, detail, text)
        if self.strict and reason not in EXPECTED_SKIPS:
            raise InputError(rejected.message())
        return rejected

    def document(self, text: str, url_or_path: str, record_id: Any = None, meta: dict | None = None) -> dict:
        return {
            "id": str(record_id) if record_id is not None else content_id(url_or_path, text),
            "text": text,
            "source": self.source,
            "url_or_path": url_or_path,
            "meta": dump_meta(meta),
        }

    def batches(self, documents: Iterator[dict | Reject]) -> Iterator[ReadBatch]:
        """Group a stream of documents and rejects into ReadBatches of `batch_size` documents."""
        rows: list[dict] = []
        rejects: list[Reject] = []
        for item in documents:
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            rows.append(item)
            if len(rows) >= self.config.batch_size:
                yield self._batch(rows, rejects)
                rows, rejects = [], []
        if rows or rejects:
            yield self._batch(rows, rejects)

    def _batch(self, rows: list[dict], rejects: list[Reject]) -> ReadBatch:
        """One table of `rows`; a row Arrow cannot hold is rejected alone, never taking its batch down."""
        try:
            return ReadBatch(pa.Table.from_pylist(rows, schema=self.schema), rejects)
        except (pa.ArrowException, UnicodeError, ValueError, TypeError, OverflowError):
            pass
        good = []
        for row in rows:
            try:
                good.append(pa.Table.from_pylist([row], schema=self.schema))
            except (pa.ArrowException, UnicodeError, ValueError, TypeError, OverflowError) as error:
                where = str(row.get("url_or_path") or row.get("id") or "?")
                rejects.append(self.reject(where, "invalid_record", f"{type(error).__name__}: {error}"[:300]))
        table = pa.concat_tables(good) if good else self.schema.empty_table()
        return ReadBatch(table, rejects)


def expand_paths(patterns: list[str]) -> list[str]:
    """Expand globs (including **, safe on symlink loops) into a sorted list naming each real file once.

    A missing input is an error."""
    found: list[str] = []
    for pattern in patterns:
        matches = expand_glob(pattern)
        if not matches:
            raise InputError(f"{pattern}: no such file or no match for this pattern")
        found.extend(matches)
    return unique_real_paths(found)


def unit_key(path: str) -> str:
    """A short stable name for a unit, readable in file names (stem + hash of the full path)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(path).name)[:40]
    return f"{stem}-{content_id(os.path.abspath(path))[:8]}"
