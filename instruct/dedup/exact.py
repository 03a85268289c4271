"""`exact_dedup`: one record per group of identical texts after a configurable normalisation.

Workers hash the normalised text (BLAKE2b, 128 bits); the driver groups equal hashes in shard
order and keeps one member per group by the keep policy. A DOCUMENT is compared by `text`, an
EXAMPLE by its whole conversation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyarrow as pa

from instruct.config import ConfigError
from instruct.dedup.clusters import (
    KeepConfig,
    check_keep,
    cluster_decision,
    concat_signatures,
    priority,
    priority_columns,
)
from instruct.dedup.text import NORMALISATIONS, normalise, record_texts
from instruct.pipeline.step import Decision, GlobalStep


class ExactDedup(GlobalStep):
    name = "exact_dedup"

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

    def decide(self, signatures: Iterable[pa.Table]) -> Decision:
        table = concat_signatures(signatures)
        if table is None:
            return Decision(drop={})
        labels = hash_groups(table.column("hash"))
        return cluster_decision(table.column("id").to_pylist(), labels, priority(table, self.config),
                                "exact_duplicate", {"normalise": self.config.normalise, "keep": self.config.keep})


def hash_groups(hashes: pa.ChunkedArray) -> np.ndarray:
    """Label of each row = index of the first row with the same hash."""
    first: dict[bytes, int] = {}
    return np.fromiter((first.setdefault(h, i) for i, h in enumerate(hashes.to_pylist())), dtype=np.int64,
                       count=len(hashes))
