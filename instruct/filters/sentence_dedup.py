"""Cross-document dedup of sentence spans (C4's three-sentence spans, datatrove's SentenceDedup).

Boilerplate that survives extraction (cookie banners, licence headers, "subscribe to our
newsletter", shared sidebars) repeats across many documents of a crawl, never within one. A
global step: workers hash each document's spans (every line cut into runs of `span_sentences`
sentences, normalised), `decide` counts in how many documents each span occurs and drops the
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
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from instruct.config import ConfigError
from instruct.pipeline.step import Decision, GlobalStep, TextTransform

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


class SentenceDedup(GlobalStep):
    name = "sentence_dedup"

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

    def decide(self, signatures: Iterable[pa.Table]) -> Decision:
        tables = [t for t in signatures if t.num_rows]
        if not tables:
            return Decision(drop={})
        table = pa.concat_tables(tables)
        flat = table.column("hashes").combine_chunks().flatten().to_numpy()
        values, counts = np.unique(flat, return_counts=True)
        repeated = values[counts >= self.config.min_docs]
        drop, counters = {}, Counter()
        repeated_set = set(repeated.tolist())
        for row_id, hashes, words, total in zip(table.column("id").to_pylist(), table.column("hashes").to_pylist(),
                                                table.column("span_words").to_pylist(), table.column("words").to_pylist()):
            removed = sum(w for h, w in zip(hashes, words) if h in repeated_set)
            if removed:
                counters["documents_with_repeated_spans"] += 1
                counters["repeated_span_words"] += removed
                if total - removed < self.config.min_words:
                    drop[row_id] = "sentence_dedup_too_short"
        counters["repeated_spans"] = len(repeated)
        side = pa.table({"hash": pa.array(repeated, pa.uint64()),
                         "documents": pa.array(counts[counts >= self.config.min_docs], pa.int64())})
        return Decision(drop=drop, counters=counters, side_tables={"repeated_spans": side},
                        report={"repeated_spans": len(repeated), "min_docs": self.config.min_docs})


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
        self.ensure_setup()
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
