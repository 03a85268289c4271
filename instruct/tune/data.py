"""Examples in, token sequences out: load, split, render with loss masks, truncate, cache.

A tokenised example is `input_ids` plus `targets`: targets[t] is the token the model must
predict after input_ids[t] when that token belongs to an assistant reply (its end-of-turn
token included), else -100. Shifting happens per example, so packing can never make one
example's last token predict the next example's first.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from instruct.io.readers.base import InputError
from instruct.io.shards import read_shards, read_table, write_table
from instruct.schema import SchemaError, examples_table, to_example
from instruct.tune.templates import render_segments

IGNORE = -100
RENDER_VERSION = "1"  # bump when rendering changes, to invalidate cached tokenisations
CHUNK_ROWS = 1024  # tokenisation is cached per chunk, so a crash keeps the finished chunks
TOKENIZED_SCHEMA = pa.schema([("id", pa.string()), ("input_ids", pa.list_(pa.int32())),
                              ("targets", pa.list_(pa.int32())), ("dropped", pa.string()),
                              ("truncated", pa.bool_())])


@dataclass
class TokenizedSet:
    """Token sequences ready for batching, and what happened to the examples that are not in it."""

    ids: list[str]
    input_ids: list[np.ndarray]
    targets: list[np.ndarray]
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    truncated_prompts: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)

    @property
    def trained_tokens(self) -> int:
        return int(sum(int((t != IGNORE).sum()) for t in self.targets))


# --- loading ----------------------------------------------------------------------------------

def load_examples(path: str | Path) -> pa.Table:
    """EXAMPLE shards (a folder or one .arrow file) or Alpaca/ShareGPT/OpenAI JSON(L) -> EXAMPLE table."""
    path = Path(path)
    if path.is_dir():
        return read_shards(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or shards folder")
    if path.suffix == ".arrow":
        return read_table(path)
    return examples_table(json_records(path, to_example))


def json_records(path: Path, convert: Any = lambda record: record) -> Iterable[Any]:
    """`convert(record)` for each JSON object of a JSON array or JSON-lines file; errors name file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):  # a JSON array of records
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
        numbered = ((f"record {i + 1}", r) for i, r in enumerate(records))
    else:
        numbered = _json_lines(path, text)
    for where, record in numbered:
        try:
            if not isinstance(record, Mapping):
                raise SchemaError(f"expected a JSON object, got {type(record).__name__}")
            yield convert(record)
        except SchemaError as error:
            raise InputError(f"{path}:{where}: {error}") from None


def _json_lines(path: Path, text: str) -> Iterable[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield str(number), json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: invalid JSON ({error.msg})") from None


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
                   cache_root: Path | None, progress: Any = None) -> TokenizedSet:
    """Tokenise an EXAMPLE table chunk by chunk; each chunk is cached by a hash of its content.

    An optional int column `trained_from` leaves each row's first replies untrained (see tokenize_example).
    """
    fingerprint = f"{tokenizer_fingerprint(tokenizer)}:{max_length}:{truncation}:{RENDER_VERSION}"
    result = TokenizedSet([], [], [])
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk = table.slice(start, CHUNK_ROWS).select([c for c in ("id", "messages", "trained_from")
                                                       if c in table.column_names])
        tokenized = _cached_chunk(chunk, tokenizer, fingerprint, max_length, truncation, cache_root)
        for row in tokenized.to_pylist():
            if row["dropped"]:
                result.dropped[row["dropped"]] += 1
                continue
            result.truncated_prompts += row["truncated"]
            result.ids.append(row["id"])
            result.input_ids.append(np.asarray(row["input_ids"], dtype=np.int64))
            result.targets.append(np.asarray(row["targets"], dtype=np.int64))
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
    rows = {name: [] for name in TOKENIZED_SCHEMA.names}
    for record in chunk.to_pylist():
        input_ids, labels = tokenize_example(tokenizer, record["messages"], record.get("trained_from") or 0)
        ids, targets, reason, truncated = shift_and_fit(input_ids, labels, max_length, truncation)
        rows["id"].append(record["id"])
        rows["input_ids"].append(ids.tolist() if reason is None else [])
        rows["targets"].append(targets.tolist() if reason is None else [])
        rows["dropped"].append(reason or "")
        rows["truncated"].append(truncated)
    table = pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)
    if path is not None:
        write_table(table, path)
    return table
