"""The one data funnel for conversations and documents: what `tune`, `eval` and `synth` accept as data.

A shards folder (`DIR` or `DIR/shards`) or one `.arrow` file of EXAMPLE, DOCUMENT or mixed rows, or a
JSON(L) file (plain, .gz, .zst; lines or an array) whose records are Alpaca, ShareGPT or OpenAI chats
(examples) or carry a string `text_field` (documents). `load_rows` takes all of it (training mixes
both); `load_examples` takes conversations only (evaluation and synthesis need a conversation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from instruct.io.records import json_records
from instruct.io.shards import read_shards, read_table
from instruct.schema import (
    SchemaError,
    content_id,
    detect_chat_format,
    documents_table,
    examples_table,
    schema_kind,
    to_example,
    to_mixed,
)


def load_rows(path: str | Path, text_field: str = "text") -> pa.Table:
    """EXAMPLE, DOCUMENT or MIXED rows at `path` (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return read_shards(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or shards folder")
    if path.suffix == ".arrow":
        return read_table(path)
    examples, documents = [], []
    for row in json_records(path, lambda record: _to_row(record, text_field, path)):
        (examples if "messages" in row else documents).append(row)
    if examples and documents:
        return pa.concat_tables([to_mixed(examples_table(examples)), to_mixed(documents_table(documents))])
    return documents_table(documents) if documents else examples_table(examples)


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Every conversation at `path` as EXAMPLE dicts (id, messages, source, meta); other rows are an error."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".arrow":
        table = load_rows(path)
        kind = schema_kind(table.schema)
        if kind != "EXAMPLE":
            raise SchemaError(f"{path}: holds {kind} rows, not EXAMPLE rows (conversations); documents train with "
                              "`instruct tune --data` (data.objective: pretrain)")
        return table.to_pylist()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return list(json_records(path, to_example))


def _to_row(record: Mapping[str, Any], text_field: str, path: Path) -> dict[str, Any]:
    """A chat record -> EXAMPLE dict; a record with a string `text_field` -> DOCUMENT dict."""
    try:
        detect_chat_format(record)
    except SchemaError:
        text = record.get(text_field)
        if not isinstance(text, str):
            raise SchemaError(f"record with fields {sorted(record)} is neither a chat (Alpaca, ShareGPT, OpenAI) "
                              f"nor a document (a string {text_field!r} field; see data.text_field)") from None
        return {"id": str(record.get("id") or content_id(text)), "text": text,
                "source": str(record.get("source") or "jsonl"), "url_or_path": str(record.get("url") or path),
                "meta": {}}
    return to_example(record)
