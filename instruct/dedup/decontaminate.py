"""`decontaminate`: drop training records that contain (or near-duplicate) any eval item.

Each worker loads the eval sets once (setup) into a sorted index of 64-bit word n-gram hashes
-> eval item. A training record's n-grams are looked up in bulk (`searchsorted`); per eval item
the overlap is exact, so the record is contaminated when

    containment = |item ∩ record| / |item|            >= threshold   (metric: containment), or
    jaccard     = |item ∩ record| / |item ∪ record|   >= threshold   (metric: jaccard).

Containment (the default) catches an eval question pasted inside a long web page, which
whole-document Jaccard misses. Eval items shorter than `ngram` words are matched as one
shingle of all their words when they have at least `min_words`; shorter ones are skipped and
counted. The driver reports which eval items were hit (report + side tables).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.config import ConfigError
from instruct.dedup.text import WORD, Shingling, conversation_text, record_texts, shingle_hashes, sorted_unique
from instruct.io.readers.base import InputError, expand_paths
from instruct.io.records import read_records
from instruct.io.shards import write_table
from instruct.pipeline.drops import drop_rows
from instruct.pipeline.shuffle import Shuffle, global_rows, side_part
from instruct.pipeline.step import GlobalStep


@dataclass
class EvalItem:
    eval_set: str
    eval_id: str
    text: str


class EvalIndex:
    """64-bit n-gram hashes of eval items, sorted, grouped by effective n-gram length."""

    def __init__(self, items: list[EvalItem], ngram: int, min_words: int) -> None:
        self.items = items
        self.sizes = np.zeros(len(items), dtype=np.int64)
        self.skipped = 0
        by_n: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            words = len(WORD.findall(item.text))
            if words < min_words:
                self.skipped += 1
                continue
            by_n.setdefault(min(ngram, words), []).append(index)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n, indices in sorted(by_n.items()):
            shingles = shingle_hashes([items[i].text for i in indices], Shingling(n), wide=True)
            owners = np.repeat(np.asarray(indices, dtype=np.int64), shingles.counts())
            order = np.argsort(shingles.values, kind="stable")
            self.tables[n] = (shingles.values[order], owners[order])
            self.sizes[indices] = shingles.counts()

    def overlaps(self, texts: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per n: (record index, eval item, shared n-grams, record n-grams) for every overlap."""
        for n, (keys, owners) in self.tables.items():
            shingles = shingle_hashes(texts, Shingling(n), wide=True)
            lo = np.searchsorted(keys, shingles.values, side="left")
            hi = np.searchsorted(keys, shingles.values, side="right")
            hits = hi - lo
            if not hits.any():
                continue
            record_of = np.repeat(np.arange(len(texts), dtype=np.int64), shingles.counts())
            positions = _expand_ranges(lo, hits)
            pair_records = np.repeat(record_of, hits)
            pair_items = owners[positions]
            codes, shared = sorted_unique(pair_records * len(self.items) + pair_items, return_counts=True)
            records = codes // len(self.items)
            yield records, codes % len(self.items), shared, shingles.counts()[records]


def _expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of range(s, s + l) for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)


CONTAMINATED = pa.schema([("id", pa.string()), ("eval_set", pa.string()), ("eval_id", pa.string()),
                          ("score", pa.float64()), ("items_hit", pa.int64())])


class Decontaminate(GlobalStep):
    name = "decontaminate"
    side_schemas = {"contaminated": CONTAMINATED}

    @dataclass
    class Config:
        eval_sets: list[str] = field(default_factory=list)  # jsonl / json / parquet / arrow files or shard folders
        text_fields: list[str] = field(default_factory=list)  # joined per eval record; empty: chat messages or `text`
        ngram: int = 8
        metric: Literal["containment", "jaccard"] = "containment"
        threshold: float = 0.5
        min_words: int = 5

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        if not self.config.eval_sets:
            raise ConfigError(f"{self.name}: eval_sets is empty; name the eval files to protect")
        if not 0.0 < self.config.threshold <= 1.0:
            raise ConfigError(f"{self.name}.threshold: must be in (0, 1], got {self.config.threshold}")
        self.index: EvalIndex | None = None

    def setup(self) -> None:
        items = [item for path in expand_paths(self.config.eval_sets)
                 for item in load_eval_items(path, self.config.text_fields)]
        self.index = EvalIndex(items, self.config.ngram, self.config.min_words)

    def signatures(self, table: pa.Table) -> pa.Table:
        """Per record: the eval items it overlaps past the threshold, and the score of each."""
        texts = record_texts(table)
        hits: list[list[int]] = [[] for _ in texts]
        scores: list[list[float]] = [[] for _ in texts]
        for records, items, shared, record_sizes in self.index.overlaps(texts):
            item_sizes = self.index.sizes[items]
            if self.config.metric == "containment":
                score = shared / item_sizes
            else:
                score = shared / (item_sizes + record_sizes - shared)
            for r, i, s in zip(records.tolist(), items.tolist(), score.tolist()):
                if s >= self.config.threshold:
                    hits[r].append(i)
                    scores[r].append(round(s, 4))
        return pa.table({"id": table.column("id"), "hits": pa.array(hits, pa.list_(pa.int64())),
                         "scores": pa.array(scores, pa.list_(pa.float64()))})

    def decide_by_shuffle(self, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
        """Rows with eval hits -> drop every row of their ids; eval-item tallies are bounded by the eval sets."""
        items = self.index.items
        schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("hits", pa.list_(pa.int64())),
                            ("scores", pa.list_(pa.float64()))])
        hits = shuffle.rows(_hit_rows, schema)
        names = ([item.eval_set for item in items], [item.eval_id for item in items])
        shuffle.count(shuffle.map(hits, partial(_write_contaminated, names, str(shuffle.side_dir))))
        counts = shuffle.shuffle(shuffle.map(hits, _hit_items), "item", _count_items)
        hit_count = dict(sorted((item, n) for block in shuffle.tables(counts) for item, n in
                                zip(block.column("item").to_pylist(), block.column("records").to_pylist())))
        tallies = drop_rows(shuffle, hits, "contaminated", drop_if_any=True)
        hit_items = pa.table({"eval_set": pa.array([items[i].eval_set for i in hit_count], pa.string()),
                              "eval_id": pa.array([items[i].eval_id for i in hit_count], pa.string()),
                              "records": pa.array(list(hit_count.values()), pa.int64())})
        write_table(hit_items, shuffle.side_dir / "eval_hits.arrow")
        report = self._report(hit_count, tallies["dropped"], hit_items.slice(0, 1000).to_pylist())
        return {"contaminated": tallies["dropped"], "eval_items_hit": len(hit_count)}, report

    def _report(self, hit_count: dict[int, int], dropped: int, hit_items: list[dict[str, Any]]) -> dict[str, Any]:
        per_set: dict[str, dict[str, int]] = {}
        for index, item in enumerate(self.index.items):
            entry = per_set.setdefault(item.eval_set, {"items": 0, "items_hit": 0})
            entry["items"] += 1
            entry["items_hit"] += index in hit_count
        return {"metric": self.config.metric, "threshold": self.config.threshold, "ngram": self.config.ngram,
                "eval_items": len(self.index.items), "eval_items_too_short": self.index.skipped,
                "eval_items_hit": len(hit_count), "records_dropped": dropped, "eval_sets": per_set,
                "hit_items": hit_items}

def _hit_rows(table: pa.Table, base: int) -> pa.Table:
    """The rows of a unit that overlap some eval item past the threshold."""
    hit = pc.greater(pc.list_value_length(table.column("hits")), 0)
    return pa.table({"row": global_rows(table, base), "id": table.column("id"), "hits": table.column("hits"),
                     "scores": table.column("scores")}).filter(hit)


def _write_contaminated(names: tuple[list[str], list[str]], side_dir: str, batch: pa.Table) -> pa.Table:
    """A part of the `contaminated` side table: the best-scoring eval item of each of these rows."""
    if batch.num_rows:
        scores, hits = batch.column("scores").to_pylist(), batch.column("hits").to_pylist()
        best = [h[int(np.argmax(s))] for h, s in zip(hits, scores)]
        write_table(pa.table({"row": batch.column("row"), "id": batch.column("id"),
                              "eval_set": pa.array([names[0][b] for b in best], pa.string()),
                              "eval_id": pa.array([names[1][b] for b in best], pa.string()),
                              "score": pa.array([max(s) for s in scores], pa.float64()),
                              "items_hit": pa.array([len(h) for h in hits], pa.int64())}),
                    side_part(Path(side_dir), "contaminated", int(batch.column("row")[0].as_py())))
    return pa.table({"rows": [batch.num_rows]})


def _hit_items(batch: pa.Table) -> pa.Table:
    return pa.table({"item": pc.list_flatten(batch.column("hits")).cast(pa.int64())})


def _count_items(batch: pa.Table) -> pa.Table:
    items, counts = np.unique(batch.column("item").to_numpy(), return_counts=True)
    return pa.table({"item": pa.array(items, pa.int64()), "records": pa.array(counts, pa.int64())})


# --- eval sets ----------------------------------------------------------------------------------

def load_eval_items(path: str, text_fields: list[str]) -> list[EvalItem]:
    """Eval records of one file or shard folder, each as the text to protect."""
    name = Path(path).name
    return [EvalItem(name, str(record.get("id") if record.get("id") is not None else where),
                     eval_text(record, text_fields, where))
            for where, record in read_records(path)]


def eval_text(record: dict[str, Any], text_fields: list[str], where: str) -> str:
    """The named fields joined (lists of choices flattened); else the conversation (any chat
    format, prompt-only too); else `text`."""
    if text_fields:
        parts = [_flatten(record[f]) for f in text_fields if record.get(f) is not None]
        if not parts:
            raise InputError(f"{where}: none of the fields {', '.join(text_fields)} is present")
        return "\n".join(parts)
    if isinstance(record.get("messages"), list):
        return conversation_text([m for m in record["messages"] if isinstance(m, dict)])
    if isinstance(record.get("conversations"), list):
        return "\n".join(str(t.get("value") or "") for t in record["conversations"] if isinstance(t, dict))
    if "instruction" in record:
        return "\n".join(_flatten(record[k]) for k in ("instruction", "input", "output") if record.get(k))
    if isinstance(record.get("text"), str):
        return record["text"]
    raise InputError(f"{where}: no 'text', 'messages' or chat fields; set text_fields "
                     f"(fields present: {', '.join(sorted(record))})")


def _flatten(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(_flatten(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(_flatten(v) for v in value.values())
    return str(value)
