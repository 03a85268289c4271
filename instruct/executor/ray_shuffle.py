"""The Ray `Shuffle`: blocks are Arrow tables in Ray's object store, operations are plain Ray tasks.

The driver never fetches a block, only per-block scalars and the small tally tables a step asks
for (`tables`). A shuffle splits each block by key hash (one task per block, one return per
partition), then runs one task per partition; plain tasks start in milliseconds where a Ray Data
hash shuffle starts aggregator actors each time, and connected components need three shuffles
per round. Partitions grow with the data so each stays small.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa

from instruct.executor.layout import RunLayout
from instruct.io.readers import WorkUnit
from instruct.pipeline.shuffle import Blocks, Shuffle, column_sum, read_units, reduce_pieces, split_by_key

ROWS_PER_PARTITION = 250_000


class RayShuffle(Shuffle):
    """One decision's blocks as object refs; tasks run on the cluster's workers."""

    def __init__(self, ray: Any, layout: RunLayout, stage_index: int, units: list[WorkUnit], side_dir: Path,
                 records: int, cpus: int) -> None:
        super().__init__([str(layout.signatures(stage_index, unit.key)) for unit in units],
                         [unit.key for unit in units], side_dir, layout.decision_dir(stage_index), records,
                         max(2 * cpus, math.ceil(records / ROWS_PER_PARTITION)))
        self.ray = ray
        self._tasks = {name: ray.remote(fn) for name, fn in
                       (("read", read_units), ("apply", _apply), ("split", _split), ("reduce", _reduce),
                        ("sum", column_sum))}

    def rows(self, fn: Callable[[pa.Table, int], pa.Table], schema: pa.Schema | None) -> Blocks:
        return [self._tasks["read"].remote(fn, schema, group) for group in self.unit_groups()]

    def map(self, blocks: Blocks, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        return [self._tasks["apply"].remote(fn, block) for block in blocks]

    def shuffle(self, blocks: Blocks, key: str, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        n = self.partitions
        if not blocks:
            return []
        split = [self._tasks["split"].options(num_returns=n).remote(block, key, n) for block in blocks]
        split = [parts if n > 1 else [parts] for parts in split]
        return [self._tasks["reduce"].remote(fn, *[parts[p] for parts in split]) for p in range(n)]

    def tables(self, blocks: Blocks) -> Iterator[pa.Table]:
        return iter(self.ray.get(list(blocks)))

    def total(self, blocks: Blocks, column: str) -> int:
        """Summed on the workers: only one scalar per block comes back."""
        return int(sum(self.ray.get([self._tasks["sum"].remote(block, column) for block in blocks])))


def _apply(fn: Callable[[pa.Table], pa.Table], block: pa.Table) -> pa.Table:
    return fn(block)


def _split(block: pa.Table, key: str, partitions: int) -> tuple[pa.Table, ...] | pa.Table:
    pieces = split_by_key(block, key, partitions)
    return pieces if partitions > 1 else pieces[0]


def _reduce(fn: Callable[[pa.Table], pa.Table], *pieces: pa.Table) -> pa.Table:
    return reduce_pieces(fn, pieces)
