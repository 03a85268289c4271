"""Load conversations for training and evaluation: EXAMPLE shards or chat JSONL files.

Accepts a shards folder (`DIR` or `DIR/shards`), a single `.arrow` file, or a `.jsonl` file of
Alpaca, ShareGPT or OpenAI-chat records (autodetected per record). A bad line is an error that
names the file and line: training on silently partial data is worse than stopping.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from instruct.io.readers.base import InputError
from instruct.io.readers.jsonl import open_text_stream
from instruct.io.shards import read_shards, read_table
from instruct.schema import SchemaError, schema_kind, to_example


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Every example at `path` as EXAMPLE dicts (id, messages, source, meta)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".arrow":
        table = read_shards(path) if path.is_dir() else read_table(path)
        kind = schema_kind(table.schema)
        if kind != "EXAMPLE":
            raise SchemaError(f"{path}: holds {kind} rows, not EXAMPLE rows (conversations); documents train with "
                              "`instruct tune --data` (data.objective: pretrain)")
        return table.to_pylist()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    examples = []
    with open_text_stream(str(path)) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                examples.append(to_example(json.loads(line)))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise InputError(f"{path}:{line_number}: invalid JSON ({error})") from None
            except (SchemaError, AttributeError, TypeError) as error:
                raise InputError(f"{path}:{line_number}: {error}") from None
    return examples
