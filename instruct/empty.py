"""No silent empties: a build, export or synth that writes nothing exits non-zero naming the top reason and its fix.

`--allow-empty` accepts an empty output (a filter that is meant to drop everything in a test run).
The likely fix is derived from the reason and, for a missing text field, from the rejected rows
themselves (the string columns they do have).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from instruct.errors import UserError
from instruct.io.shards import iter_batches

ALLOW = "or pass --allow-empty to accept an empty output"

FIXES = {  # reason -> the likely fix, when nothing more specific is known
    "invalid_json": "check read.format (jsonl needs one JSON object per line)",
    "not_an_object": "read.format: dataset reads JSON arrays and labeled rows",
    "invalid_utf8": "re-encode the input as UTF-8",
    "unlabeled": "name the label column for the templates (steps.template.columns={COLUMN: label}) and map raw "
                 "labels to answer_choices indexes (steps.template.label_map)",
    "unreadable_file": "check the input paths and their permissions",
    "too_large": "raise read.max_record_bytes",
}


def refuse_empty(what: str, written: int, reasons: Counter, allow_empty: bool, rejected_dir: Path | None = None,
                 where: str = "", fix: str | None = None, noun: str = "records") -> None:
    """Raise a one-line UserError when `written` is 0, unless allowed.

    `reasons` counts (step, reason) pairs, or plain reasons; `rejected_dir` holds rejected rows to name a
    fix from; `fix` replaces the fix derived from the top reason.
    """
    if written or allow_empty:
        return
    if not reasons:
        raise UserError(f"{what} wrote nothing: the input holds no records{_see(where)}; {ALLOW}")
    top, count = reasons.most_common(1)[0]
    step, reason = top if isinstance(top, tuple) else ("", top)
    label = f"{step}/{reason}" if step else reason
    total = sum(reasons.values())
    fix = fix or likely_fix(reason, rejected_dir)
    raise UserError(f"{what} wrote nothing: all {total:,} {noun} were dropped, {count:,} as {label}"
                    f"{_see(where)}; likely fix: {fix}; {ALLOW}")


def likely_fix(reason: str, rejected_dir: Path | None = None) -> str:
    if reason == "missing_text_field":
        columns = _string_columns(rejected_dir) if rejected_dir else []
        named = f"read.text_field={columns[0]}" if columns else "read.text_field=COLUMN"
        listed = f" (the rows have string fields {', '.join(columns)})" if columns else ""
        return f"{named}{listed}, or read.format: dataset for labeled rows"
    return FIXES.get(reason, "see the rejected/ folder and manifest.json for what each step dropped")


def _see(where: str) -> str:
    return f" (see {where})" if where else ""


def _string_columns(rejected_dir: Path) -> list[str]:
    """String fields of the first read reject that kept its raw record (a JSON object)."""
    for path in sorted(rejected_dir.glob("read-*.arrow")):
        for batch in iter_batches(path):
            for raw in batch.column("text").to_pylist():
                try:
                    record = json.loads(raw) if raw else None
                except ValueError:
                    continue
                if isinstance(record, dict):
                    return [key for key, value in record.items() if isinstance(value, str)]
    return []
