"""`exact_dedup`: one record per group of identical texts after a configurable normalisation.

Workers hash the normalised text (BLAKE2b, 128 bits); pass 2 shuffles rows by hash, groups equal
hashes and keeps one member per group by the keep policy (`dedup.fate`). A DOCUMENT is compared by `text`, an
EXAMPLE by its whole conversation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from instruct.config import ConfigError
from instruct.dedup.clusters import CLUSTERS, KeepConfig, check_keep, priority_columns
from instruct.dedup.fate import decide_clusters
from instruct.dedup.text import NORMALISATIONS, normalise, record_texts
from instruct.pipeline.shuffle import Shuffle, columns, global_rows
from instruct.pipeline.step import GlobalStep


class ExactDedup(GlobalStep):
    name = "exact_dedup"
    side_schemas = {"clusters": CLUSTERS}

    @dataclass
    class Config(KeepConfig):
        normalise: list[str] = field(default_factory=lambda: ["nfkc", "lowercase", "whitespace"])

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        unknown = sorted(set(self.config.normalise) - set(NORMALISATIONS))
        if unknown:
            raise ConfigError(f"{self.name}.normalise: unknown {', '.join(unknown)}; "
                              f"choose from {', '.join(NORMALISATIONS)}")
        check_keep(self.config, self.name)

    def signatures(self, table: pa.Table) -> pa.Table:
        texts = record_texts(table)
        digests = [hashlib.blake2b(normalise(t, self.config.normalise).encode("utf-8", "surrogatepass"),
                                   digest_size=16).digest() for t in texts]
        columns = {"id": table.column("id"), "hash": pa.array(digests, pa.binary(16))}
        columns.update(priority_columns(table, texts, self.config))
        return pa.table(columns)

    def check_columns(self) -> list[str]:
        """Equal hashes are duplicates: no pairwise check."""
        return []

    def decide_by_shuffle(self, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
        """Rows ─shuffle by hash─▶ each row labelled with the first row of equal hash ─▶ clusters."""
        hashes = shuffle.rows(_hash_rows, pa.schema([("row", pa.int64()), ("h0", pa.uint64()), ("h1", pa.uint64())]))
        labelled = shuffle.shuffle(hashes, "h0", _same_hash)
        return decide_clusters(shuffle, self, labelled, "exact_duplicate",
                               {"normalise": self.config.normalise, "keep": self.config.keep})

def _hash_rows(table: pa.Table, base: int) -> pa.Table:
    digests = table.column("hash").combine_chunks()
    words = np.frombuffer(digests.buffers()[1], dtype=">u8")[2 * digests.offset:2 * (digests.offset + len(digests))]
    words = words.astype(np.uint64).reshape(-1, 2)
    return pa.table({"row": global_rows(table, base), "h0": words[:, 0], "h1": words[:, 1]})


def _same_hash(batch: pa.Table) -> pa.Table:
    """Each row whose 128-bit hash an earlier row has, labelled with that earlier row."""
    row, h0, h1 = columns(batch, "row", "h0", "h1")
    order = np.lexsort((row, h1, h0))
    row, h0, h1 = row[order], h0[order], h1[order]
    new = np.ones(len(row), dtype=bool)
    new[1:] = (h0[1:] != h0[:-1]) | (h1[1:] != h1[:-1])
    first = row[np.maximum.accumulate(np.where(new, np.arange(len(row)), 0))]
    return pa.table({"u": pa.array(row[~new], pa.int64()), "v": pa.array(first[~new], pa.int64())})
