"""The one reader for JSON records a user hands us directly: training and eval data, eval sets for
decontamination, seed tasks, prompts, labeled texts.

A file is plain, .gz or .zst, and holds JSON lines or one JSON array (told apart by its first
character). A bad record stops the read with an InputError naming `file:line` (`file#index` inside
an array or a table) and what is wrong: training or evaluating on silently partial data is worse
than stopping. The pipeline's readers, which reject bad lines instead, share `parse_json_line`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from instruct.io.readers.base import InputError
from instruct.io.readers.jsonl import parse_json_line
from instruct.io.shards import read_shards, read_table
from instruct.io.streams import open_text_stream
from instruct.schema import SchemaError

TABLE_SUFFIXES = (".arrow", ".parquet")
_PROBLEMS = {"invalid_json": "invalid JSON ({})", "invalid_utf8": "not UTF-8 text ({})",
             "invalid_unicode": "invalid JSON text ({})", "not_an_object": "expected a JSON object, got {}"}


def json_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for every record of a JSON-lines or JSON-array file, in order."""
    with open_text_stream(str(path)) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if line.lstrip().startswith(b"["):  # a JSON array: the rest of the file is part of it
                yield from _array(path, number, line + lines.read())
                return
            record, reason, detail, _ = parse_json_line(line)
            if reason is not None:
                raise InputError(f"{path}:{number}: {_PROBLEMS[reason].format(detail)}")
            yield f"{path}:{number}", record


def _array(path: str | Path, first_line: int, data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        values = json.loads(data)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{first_line + error.lineno - 1}: invalid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error})") from None
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise InputError(f"{path}#{index}: expected a JSON object, got {type(value).__name__}")
        yield f"{path}#{index}", value


def table_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for every row of a shards folder, an .arrow or a .parquet file."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        table = read_shards(path) if path.is_dir() else read_table(path)
    for index, row in enumerate(table.to_pylist()):
        yield f"{path}#{index}", row


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) of a shards folder or table file, else of a JSON(L) file; a missing path is an error."""
    path = Path(path)
    if path.is_dir() or (path.suffix in TABLE_SUFFIXES and path.is_file()):
        return table_rows(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or shards folder")
    return json_objects(path)


def json_records(path: str | Path, convert: Callable[[dict[str, Any]], Any] = lambda record: record) -> Iterator[Any]:
    """`convert(record)` for each record of a JSON(L) file; a record `convert` refuses names its file and line."""
    for where, record in json_objects(path):
        try:
            yield convert(record)
        except (SchemaError, AttributeError, TypeError) as error:
            raise InputError(f"{where}: {error}") from None
