"""What one unit of one stage counted: rows in, kept and dropped per step and reason, length bins.

Workers write them (`DIR/.work/stageS/UNIT.stats.json`), the manifest sums them; both sides
import this module and nothing else of the executor.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

LENGTH_BINS = np.concatenate([[0], np.logspace(0, 7, 57)])  # characters, log-spaced up to 10M


@dataclass
class UnitStats:
    """Counts of one unit in one stage; summed into the manifest."""

    unit: str
    stage: int
    read: int = 0  # records that entered this stage for this unit (documents + read rejects)
    kept: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> reason -> n
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> name -> n
    step_in: dict[str, int] = field(default_factory=dict)  # step -> rows that reached it
    added: dict[str, int] = field(default_factory=dict)  # step -> rows it created (e.g. k templates per row)
    lengths_kept: list[int] = field(default_factory=lambda: [0] * (len(LENGTH_BINS) - 1))
    lengths_dropped: list[int] = field(default_factory=lambda: [0] * (len(LENGTH_BINS) - 1))
    seconds: float = 0.0
    fingerprint: str = ""  # of the unit's input files when it was read (stage 0): a change redoes the unit
    outputs: list[str] = field(default_factory=list)  # files it wrote under DIR (shards/..., rejected/...)

    def drop(self, step: str, reasons: list[str]) -> None:
        bucket = self.dropped.setdefault(step, {})
        for reason, n in Counter(reasons).items():
            bucket[reason] = bucket.get(reason, 0) + n


def add_lengths(histogram: list[int], table: pa.Table) -> None:
    """Add the text lengths of `table`'s rows to `histogram` (LENGTH_BINS)."""
    if table.num_rows == 0:
        return
    if "text" in table.column_names:
        lengths = [len(t or "") for t in table.column("text").to_pylist()]
    else:
        columns = [table.column(name).to_pylist() for name in ("messages", "prompt", "chosen")
                   if name in table.column_names]  # a PREFERENCE row counts its prompt and chosen answer
        if not columns:
            return
        lengths = [sum(len(m["content"] or "") for messages in row for m in messages or ()) for row in zip(*columns)]
    counts, _ = np.histogram(lengths, bins=LENGTH_BINS)
    for i, n in enumerate(counts):
        histogram[i] += int(n)
