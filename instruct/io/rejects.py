"""One schema for every file in `DIR/rejected/`, so `load_dataset("arrow", data_files="DIR/rejected/*.arrow")`
loads read rejects and step rejects (of any row schema) as one dataset.

`text` holds what a person reads to judge the drop (the raw line, a document's text, an
example's messages); `record` the rest of the dropped row as JSON, so nothing is lost.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

REJECT_SCHEMA = pa.schema([("id", pa.string()), ("step", pa.string()), ("reason", pa.string()),
                           ("where", pa.string()), ("detail", pa.string()), ("text", pa.string()),
                           ("source", pa.string()), ("meta", pa.string()), ("record", pa.string())])

_OWN_COLUMNS = {"id", "text", "source", "meta", "url_or_path"}  # columns of a dropped row kept as columns


def read_rejects_table(rejects: Iterable[Any]) -> pa.Table:
    """Rejects of a reader (`where`, `reason`, `detail`, `text`) as REJECT_SCHEMA rows of step `read`."""
    return pa.Table.from_pylist([{"id": r.where, "step": "read", "reason": r.reason, "where": r.where,
                                  "detail": r.detail, "text": r.text, "source": None, "meta": "{}",
                                  "record": None} for r in rejects], schema=REJECT_SCHEMA)


def step_rejects_table(table: pa.Table, step: str, reasons: list[str]) -> pa.Table:
    """Rows a step dropped (DOCUMENT, EXAMPLE, PREFERENCE or raw dataset rows) as REJECT_SCHEMA rows."""
    rows = []
    for row, reason in zip(table.to_pylist(), reasons):
        rest = {k: v for k, v in row.items() if k not in _OWN_COLUMNS}
        rows.append({"id": _text_or_none(row.get("id")), "step": step, "reason": reason,
                     "where": _text_or_none(row.get("url_or_path")), "detail": "",
                     "text": row["text"] if isinstance(row.get("text"), str) else readable_text(row),
                     "source": _text_or_none(row.get("source")),
                     "meta": row["meta"] if isinstance(row.get("meta"), str) else json.dumps(row.get("meta") or {}),
                     "record": json.dumps(rest, ensure_ascii=False, default=str) if rest else None})
    return pa.Table.from_pylist(rows, schema=REJECT_SCHEMA)


def readable_text(row: dict[str, Any]) -> str:
    """The messages of an example (or a preference pair's prompt and answers) as `role: content` lines."""
    lines = []
    for column in ("messages", "prompt", "chosen", "rejected"):
        for message in row.get(column) or ():
            if isinstance(message, dict):
                lines.append(f"{message.get('role')}: {message.get('content')}")
    return "\n".join(lines)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
