"""Cross-document dedup of sentence spans (C4's three-sentence spans, datatrove's SentenceDedup).

Boilerplate that survives extraction (cookie banners, licence headers, "subscribe to our
newsletter", shared sidebars) repeats across many documents of a crawl, never within one. A
global step: workers hash each document's spans (every line cut into runs of `span_sentences`
sentences, normalised), pass 2 counts in how many documents each span occurs and drops the
documents that would be left with fewer than `min_words` words once the spans seen in at least
`min_docs` documents are removed (`sentence_dedup_too_short`). The repeated spans go to the side
table `DIR/sentence_dedup/repeated_spans.arrow`; `sentence_dedup_strip` removes them from the
kept documents in the next stage:

    - sentence_dedup: {min_docs: 3}
    - sentence_dedup_strip: {spans: out/web/sentence_dedup/repeated_spans.arrow}
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.config import ConfigError
from instruct.io.shards import write_table
from instruct.pipeline.drops import drop_rows
from instruct.pipeline.shuffle import Shuffle, global_rows, segments, side_part
from instruct.pipeline.step import GlobalStep, TextTransform

SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=\S)")
SPACES_RE = re.compile(r"\s+")


def spans(text: str, per_span: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, normalised text) of each span: a line's sentences in runs of `per_span`."""
    position = 0
    for line in text.split("\n"):
        sentences = _sentence_bounds(line)
        for i in range(0, len(sentences), per_span):
            start, end = sentences[i][0], sentences[min(i + per_span, len(sentences)) - 1][1]
            normalised = SPACES_RE.sub(" ", line[start:end]).strip().lower()
            if normalised:
                yield position + start, position + end, normalised
        position += len(line) + 1


def _sentence_bounds(line: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for match in SENTENCE_SPLIT_RE.finditer(line):
        bounds.append((start, match.start()))
        start = match.end()
    if line[start:].strip():
        bounds.append((start, len(line)))
    return bounds


def span_hash(normalised: str) -> int:
    return int.from_bytes(hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


REPEATED_SPANS = pa.schema([("hash", pa.uint64()), ("documents", pa.int64())])
DOCUMENT_WORDS = pa.schema([("row", pa.int64()), ("id", pa.string()), ("words", pa.int64()), ("removed", pa.int64())])
_SIGN = np.uint64(1 << 63)  # uint64 ^ _SIGN, read as int64, sorts as the uint64 does


class SentenceDedup(GlobalStep):
    name = "sentence_dedup"
    side_schemas = {"repeated_spans": REPEATED_SPANS}

    @dataclass
    class Config:
        span_sentences: int = 3  # C4: three-sentence spans
        min_docs: int = 3  # a span in at least this many documents is boilerplate
        min_span_words: int = 3  # shorter spans ("Next.", "Home.") are never counted
        min_words: int = 50  # documents left with fewer words are dropped

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        if self.config.span_sentences < 1 or self.config.min_docs < 2:
            raise ConfigError(f"{self.name}: span_sentences must be >= 1 and min_docs >= 2")

    def signatures(self, table: pa.Table) -> pa.Table:
        hashes, words, totals = [], [], []
        for text in table.column("text").to_pylist():
            found = [(span_hash(s), len(s.split())) for _, _, s in spans(text or "", self.config.span_sentences)
                     if len(s.split()) >= self.config.min_span_words]
            unique = dict(found)  # a span repeated inside one document counts once for that document
            hashes.append(list(unique))
            words.append(list(unique.values()))
            totals.append(len((text or "").split()))
        return pa.table({"id": table.column("id"), "hashes": pa.array(hashes, pa.list_(pa.uint64())),
                         "span_words": pa.array(words, pa.list_(pa.int32())), "words": pa.array(totals, pa.int64())})

    def decide_by_shuffle(self, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
        """Spans ─shuffle by hash─▶ repeated spans (in >= min_docs documents) and their words per
        document ─shuffle by document─▶ documents left too short ─▶ drops (every row of their id)."""
        spans_schema = pa.schema([("row", pa.int64()), ("hash", pa.uint64()), ("span_words", pa.int64())])
        found = shuffle.rows(_span_rows, spans_schema)
        repeated = shuffle.shuffle(found, "hash", partial(_repeated_spans, self.config.min_docs,
                                                          str(shuffle.side_dir)))
        documents = shuffle.rows(_document_rows, DOCUMENT_WORDS) + shuffle.map(repeated, _removed_words)
        judged = shuffle.shuffle(documents, "row", partial(_too_short, self.config.min_words))
        with_spans = shuffle.count(judged)
        counters = {"documents_with_repeated_spans": with_spans,
                    "repeated_span_words": shuffle.total(judged, "removed")} if with_spans else {}
        counters["repeated_spans"] = shuffle.total(repeated, "first")
        drop_rows(shuffle, shuffle.map(judged, _dropped), "sentence_dedup_too_short", drop_if_any=True)
        return counters, {"repeated_spans": counters["repeated_spans"], "min_docs": self.config.min_docs}


def _span_rows(table: pa.Table, base: int) -> pa.Table:
    hashes = table.column("hashes").combine_chunks()
    rows = base + np.repeat(np.arange(table.num_rows, dtype=np.int64), pc.list_value_length(hashes).to_numpy())
    return pa.table({"row": rows, "hash": hashes.flatten().cast(pa.uint64()),
                     "span_words": table.column("span_words").combine_chunks().flatten().cast(pa.int64())})


def _repeated_spans(min_docs: int, side_dir: str, batch: pa.Table) -> pa.Table:
    """The occurrences (row, words) of spans seen in at least `min_docs` documents; their part of
    the `repeated_spans` side table."""
    row, keys, words = (batch.column(name).to_numpy() for name in ("row", "hash", "span_words"))
    order = np.lexsort((row, keys))
    row, keys, words = row[order], keys[order], words[order]
    starts, sizes = segments(keys)
    repeated = sizes >= min_docs
    keep = np.repeat(repeated, sizes)
    first = np.zeros(len(row), np.int64)
    first[starts[repeated]] = 1
    if repeated.any():
        hashes = keys[starts[repeated]]
        write_table(pa.table({"row": pa.array((hashes ^ _SIGN).view(np.int64)), "hash": pa.array(hashes, pa.uint64()),
                              "documents": pa.array(sizes[repeated], pa.int64())}),
                    side_part(Path(side_dir), "repeated_spans", int(hashes[0])))
    return pa.table({"row": pa.array(row[keep], pa.int64()), "removed": pa.array(words[keep], pa.int64()),
                     "first": pa.array(first[keep], pa.int64())})


def _document_rows(table: pa.Table, base: int) -> pa.Table:
    return pa.table({"row": global_rows(table, base), "id": table.column("id"), "words": table.column("words"),
                     "removed": pa.array(np.zeros(table.num_rows, np.int64))})


def _removed_words(batch: pa.Table) -> pa.Table:
    return pa.table({"row": batch.column("row"), "id": pa.nulls(batch.num_rows, pa.string()),
                     "words": pa.array(np.zeros(batch.num_rows, np.int64)), "removed": batch.column("removed")})


def _too_short(min_words: int, batch: pa.Table) -> pa.Table:
    """Per document with repeated spans: the words they take, and whether too few words are left."""
    grouped = batch.group_by("row").aggregate([("id", "max"), ("words", "sum"), ("removed", "sum")])
    grouped = grouped.filter(pc.greater(grouped.column("removed_sum"), 0))
    left = pc.subtract(grouped.column("words_sum"), grouped.column("removed_sum"))
    return pa.table({"row": grouped.column("row"), "id": grouped.column("id_max"),
                     "removed": grouped.column("removed_sum"), "drop": pc.less(left, min_words)})


def _dropped(batch: pa.Table) -> pa.Table:
    return batch.filter(batch.column("drop")).select(["row", "id"])


class SentenceDedupStrip(TextTransform):
    """Remove the spans a `sentence_dedup` decision found repeated (its `repeated_spans.arrow`)."""

    name = "sentence_dedup_strip"

    @dataclass
    class Config:
        spans: str  # DIR/sentence_dedup/repeated_spans.arrow of this build
        span_sentences: int = 3  # as in the sentence_dedup step

    def setup(self) -> None:
        from instruct.io.shards import read_table

        try:
            self._repeated = set(read_table(self.config.spans).column("hash").to_pylist())
        except (OSError, pa.ArrowInvalid, KeyError) as error:
            raise ConfigError(f"{self.name}.spans: cannot read {self.config.spans} ({error})") from None

    def transform(self, text: str) -> tuple[str, Counter]:
        cuts = [(start, end) for start, end, s in spans(text, self.config.span_sentences)
                if span_hash(s) in self._repeated]
        if not cuts:
            return text, Counter()
        parts, position = [], 0
        for start, end in cuts:
            parts.append(text[position:start])
            position = end
        parts.append(text[position:])
        return "\n".join(line.strip() for line in "".join(parts).split("\n") if line.strip()), Counter()
