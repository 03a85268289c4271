"""Labeled text for training: two inputs (good and bad) or one input with a label field.

Inputs are DOCUMENT shard folders or `.arrow` files, Parquet, JSONL (plain/.gz/.zst; e.g. the
output of `instruct classify annotate`), or `.txt` files (one document per file; globs allowed).
A record without text or label is an error naming file and line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from instruct.io.readers.base import InputError, expand_paths
from instruct.io.records import read_records


def iter_records(pattern: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record of every file matching `pattern` (a .txt file is one record)."""
    if Path(pattern).is_dir():
        yield from read_records(pattern)
        return
    for name in expand_paths([pattern]):
        if name.endswith(".txt"):
            yield name, {"text": Path(name).read_text(encoding="utf-8", errors="replace")}
        else:
            yield from read_records(name)


def load_texts(pattern: str, text_field: str = "text") -> list[str]:
    texts = []
    for where, record in iter_records(pattern):
        text = record.get(text_field)
        if not isinstance(text, str):
            raise InputError(f"{where}: no string field {text_field!r}")
        texts.append(text)
    return texts


def load_labeled(pattern: str, text_field: str, label_field: str, threshold: float | None,
                 positive: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels: numbers/bools are good when >= threshold, strings when in `positive`."""
    texts, labels = [], []
    for where, record in iter_records(pattern):
        text, label = record.get(text_field), record.get(label_field)
        if isinstance(record.get("meta"), str) and label is None:  # DOCUMENT rows keep labels in meta
            label = json.loads(record["meta"] or "{}").get(label_field)
        if not isinstance(text, str):
            raise InputError(f"{where}: no string field {text_field!r}")
        if isinstance(label, str) and positive:
            labels.append(int(label in positive))
        elif isinstance(label, (bool, int, float)) and threshold is not None:
            labels.append(int(float(label) >= threshold))
        else:
            raise InputError(f"{where}: label field {label_field!r} is {label!r}; expected a number "
                             f"(good when >= {threshold}) or one of the strings {list(positive)}")
        texts.append(text)
    return texts, labels
