"""Examples and documents in, token sequences out: load, split, render with loss masks, window, cache.

A tokenised row is `input_ids` plus `targets`: targets[t] is the token the model must predict
after input_ids[t] where that token is trained, else -100. For an EXAMPLE (objective `sft`)
the trained tokens are its assistant replies (end-of-turn token included); for a DOCUMENT
(objective `pretrain`) every token, in windows cut by `documents.py`. Shifting happens per row,
so packing can never make one row's last token predict the next row's first.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from instruct.config import ConfigError
from instruct.io.examples import load_rows as load_examples  # noqa: F401  (training's name for the one funnel)
from instruct.io.records import json_records  # noqa: F401  (its old home; callers import it from io.records)
from instruct.io.shards import read_table, write_table
from instruct.schema import SchemaError, schema_kind
from instruct.tune.documents import (
    IGNORE,
    document_windows,
    end_of_text_id,
    tokenize_document,
)
from instruct.tune.templates import render_segments

RENDER_VERSION = "1"  # bump when rendering changes, to invalidate cached tokenisations
CHUNK_ROWS = 1024  # tokenisation is cached per chunk, so a crash keeps the finished chunks
TOKENIZED_SCHEMA = pa.schema([("id", pa.string()), ("input_ids", pa.list_(pa.int32())),
                              ("targets", pa.list_(pa.int32())), ("dropped", pa.string()),
                              ("truncated", pa.bool_())])


@dataclass
class TokenizedSet:
    """Token sequences ready for batching, and what happened to the rows that are not in it."""

    ids: list[str]
    input_ids: list[np.ndarray]
    targets: list[np.ndarray]
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    truncated_prompts: int = 0
    sources: list[str] = field(default_factory=list)  # per row: the mix source or `source` column (loss per source)
    examples: int = 0  # EXAMPLE rows tokenised (one sequence each)
    documents: int = 0  # DOCUMENT rows tokenised, into `windows` sequences
    windows: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def add(self, row_id: str, input_ids: np.ndarray, targets: np.ndarray, source: str) -> None:
        """Append one row (while building the set: `groups` and `source_names` are computed once, after)."""
        self.ids.append(row_id)
        self.input_ids.append(input_ids)
        self.targets.append(targets)
        self.sources.append(source)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)

    @property
    def trained_per_row(self) -> np.ndarray:
        return np.array([int((t != IGNORE).sum()) for t in self.targets], dtype=np.int64)

    @property
    def trained_tokens(self) -> int:
        return int(self.trained_per_row.sum())

    @cached_property
    def source_names(self) -> list[str]:
        return sorted(set(self.sources)) or ["data"]

    @cached_property
    def groups(self) -> np.ndarray:
        """Per row, the index of its source in `source_names` (micro-batches never mix sources)."""
        if not self.sources:
            return np.zeros(len(self), dtype=np.int64)
        index = {name: i for i, name in enumerate(self.source_names)}
        return np.array([index[s] for s in self.sources], dtype=np.int64)


def resolve_objective(table: pa.Table, objective: str, where: str) -> str:
    """'sft', 'pretrain' or 'mixed' for this table under `data.objective`; a mismatch is a one-line error."""
    kind = schema_kind(table.schema)
    wanted = {"EXAMPLE": "sft", "DOCUMENT": "pretrain", "MIXED": "mixed"}.get(kind)
    if wanted is None:
        raise ConfigError(f"{where}: holds {kind} rows; instruct tune trains on EXAMPLE (sft) or DOCUMENT "
                          "(pretrain) rows")
    if objective not in ("auto", wanted):
        rows = {"sft": "EXAMPLE rows (messages)", "pretrain": "DOCUMENT rows (text)",
                "mixed": "both EXAMPLE and DOCUMENT rows"}[wanted]
        raise ConfigError(f"{where}: holds {rows}, but data.objective={objective}; set data.objective="
                          f"{'auto' if wanted == 'mixed' else wanted} (or auto: documents pretrain, examples sft)")
    return wanted


def row_sources(table: pa.Table) -> list[str]:
    """Per row, what its loss is reported under: the `instruct mix` source, else the `source` column."""
    sources = table.column("source").to_pylist() if "source" in table.schema.names else [None] * table.num_rows
    metas = table.column("meta").to_pylist() if "meta" in table.schema.names else [None] * table.num_rows
    names = []
    for source, meta in zip(sources, metas):
        mixed = json.loads(meta).get("mixture", {}).get("source") if meta and '"mixture"' in meta else None
        names.append(str(mixed or source or "data"))
    return names


def split_eval(table: pa.Table, fraction: float, limit: int) -> tuple[pa.Table, pa.Table]:
    """Hold out ~`fraction` of examples (at most `limit`), chosen by id hash: stable under reordering."""
    if fraction <= 0 or table.num_rows < 2:
        return table, table.slice(0, 0)
    ids = table.column("id").to_pylist()
    scores = np.array([int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "big") for i in ids],
                      dtype=np.float64) / 2.0**64
    held = np.flatnonzero(scores < fraction)[: max(1, limit)]
    if len(held) == 0:
        held = np.array([int(np.argmin(scores))])
    mask = np.zeros(len(ids), dtype=bool)
    mask[held] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


# --- tokenisation -----------------------------------------------------------------------------

def tokenize_example(tokenizer: Any, messages: Sequence[Mapping[str, str]], trained_from: int = 0
                     ) -> tuple[list[int], list[int]]:
    """Render and tokenise one conversation: (input_ids, labels) with labels == IGNORE off the replies.

    Within a reply segment, tokens after its last special token (e.g. the newline after
    <|im_end|>) are not trained: generation stops at the end-of-turn token. Replies before the
    `trained_from`-th are context only (a preference pair trains only its answer, not its prompt).
    """
    special = set(tokenizer.all_special_ids)
    input_ids: list[int] = []
    labels: list[int] = []
    replies = 0
    for text, trained in render_segments(tokenizer, messages):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        replies += trained
        if trained and replies > trained_from:
            stops = [i for i, token in enumerate(ids) if token in special]
            if not stops:
                raise SchemaError("the chat template ends an assistant reply without an end-of-turn/EOS token, "
                                  "so the model would never learn to stop; use data.template=alpaca or chatml")
            end = stops[-1] + 1
            labels += ids[:end] + [IGNORE] * (len(ids) - end)
        else:
            labels += [IGNORE] * len(ids)
        input_ids += ids
    return input_ids, labels


def shift_and_fit(input_ids: list[int], labels: list[int], max_length: int, truncation: str
                  ) -> tuple[np.ndarray, np.ndarray, str | None, bool]:
    """Next-token targets, cut to `max_length` by the truncation policy: (ids, targets, drop_reason, truncated)."""
    ids = np.asarray(input_ids, dtype=np.int32)
    targets = np.full(len(ids), IGNORE, dtype=np.int32)
    targets[:-1] = np.asarray(labels[1:], dtype=np.int32)
    trained = np.flatnonzero(targets != IGNORE)
    if len(trained) == 0:
        return ids, targets, "no_trained_tokens", False
    if len(ids) <= max_length:
        return ids, targets, None, False
    if truncation == "truncate_prompt" and trained[0] >= len(ids) - max_length:
        return ids[-max_length:], targets[-max_length:], None, True
    return ids, targets, "answer_too_long" if truncation == "truncate_prompt" else "too_long", False


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides token ids: the tokenizer files (or vocab) and the chat template."""
    digest = hashlib.blake2b(digest_size=16)
    folder = Path(getattr(tokenizer, "name_or_path", "") or ".")
    files = [folder / n for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")]
    if any(f.is_file() for f in files):
        for f in files:
            if f.is_file():
                digest.update(f.read_bytes())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update((tokenizer.chat_template or "").encode())
    digest.update(json.dumps([tokenizer.all_special_tokens, type(tokenizer).__name__]).encode())
    return digest.hexdigest()


def tokenize_table(table: pa.Table, tokenizer: Any, max_length: int, truncation: str,
                   cache_root: Path | None, progress: Any = None, stride: int | None = None) -> TokenizedSet:
    """Tokenise an EXAMPLE, DOCUMENT or mixed table chunk by chunk; each chunk is cached by a hash of its
    content. Examples become one sequence each; documents are cached whole and cut into windows here.

    An optional int column `trained_from` leaves each row's first replies untrained (see tokenize_example).
    """
    fingerprint = f"{tokenizer_fingerprint(tokenizer)}:{max_length}:{truncation}:{RENDER_VERSION}"
    columns = [c for c in ("id", "messages", "text", "trained_from") if c in table.schema.names]
    sources = row_sources(table)
    result = TokenizedSet([], [], [])
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk = table.slice(start, CHUNK_ROWS).select(columns)
        tokenized = _cached_chunk(chunk, tokenizer, fingerprint, max_length, truncation, cache_root)
        documents = chunk.column("text").is_valid().to_pylist() if "text" in columns else [False] * chunk.num_rows
        if "messages" in columns:  # a mixed row with messages is an example, whatever its text
            documents = [d and not m for d, m in zip(documents, chunk.column("messages").is_valid().to_pylist())]
        for offset, (row, is_document) in enumerate(zip(tokenized.to_pylist(), documents)):
            if row["dropped"]:
                result.dropped[row["dropped"]] += 1
                continue
            source = sources[start + offset]
            if is_document:
                windows = document_windows(np.asarray(row["input_ids"], dtype=np.int64), max_length,
                                           stride or max_length)
                result.documents += 1
                result.windows += len(windows)
                for number, (ids, targets) in enumerate(windows):
                    result.add(f"{row['id']}#w{number}", ids, targets, source)
            else:
                result.examples += 1
                result.truncated_prompts += row["truncated"]
                result.add(row["id"], np.asarray(row["input_ids"], dtype=np.int64),
                           np.asarray(row["targets"], dtype=np.int64), source)
        if progress is not None:
            progress.update(chunk.num_rows)
    return result


def _cached_chunk(chunk: pa.Table, tokenizer: Any, fingerprint: str, max_length: int, truncation: str,
                  cache_root: Path | None) -> pa.Table:
    digest = hashlib.blake2b(fingerprint.encode(), digest_size=16)
    digest.update(json.dumps(chunk.to_pylist(), ensure_ascii=False).encode())
    path = cache_root / f"{digest.hexdigest()}.arrow" if cache_root else None
    if path is not None and path.is_file():
        return read_table(path)
    end_id = end_of_text_id(tokenizer) if "text" in chunk.schema.names else None
    rows = {name: [] for name in TOKENIZED_SCHEMA.names}
    for record in chunk.to_pylist():
        if record.get("messages") is None:  # a document: all its tokens, windowed after the cache
            text = record.get("text") or ""
            ids, targets = tokenize_document(tokenizer, text, end_id), []
            reason, truncated = ("empty_document" if not text.strip() else None), False
        else:
            input_ids, labels = tokenize_example(tokenizer, record["messages"], record.get("trained_from") or 0)
            ids, targets, reason, truncated = shift_and_fit(input_ids, labels, max_length, truncation)
            ids, targets = ids.tolist(), targets.tolist()
        rows["id"].append(record["id"])
        rows["input_ids"].append(ids if reason is None else [])
        rows["targets"].append(targets if reason is None else [])
        rows["dropped"].append(reason or "")
        rows["truncated"].append(truncated)
    table = pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)
    if path is not None:
        write_table(table, path)
    return table
