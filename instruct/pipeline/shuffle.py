"""The interface a global step's decision is written against: map over units, shuffle by key, reduce.

A decision is a small dataflow over Arrow tables ("blocks"): `rows` maps a function over every
unit's signature table, `map` transforms blocks, `shuffle` hash-partitions rows by a key column
so that equal keys meet in one call of the reduce function. Executors implement it: in this
process with partitions spilled to the run folder (`executor.local_shuffle`), or as Ray tasks
(`executor.ray_shuffle`). A step writes its decision once (`GlobalStep.decide_by_shuffle`) and
runs on either.

Global rows are numbered `unit position << ROW_BITS | row`, in shard order, so every tie-break
is independent of how many partitions or workers there are. Only small keys travel; functions
that need wide columns (shingle sets) read them from the memory-mapped signature files with
`SignatureStore`. Functions given to `rows`, `map` and `shuffle` must be picklable (module-level
functions or `functools.partial` of them).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.io.shards import read_table, write_table

ROW_BITS = 32  # row bits of a global row number; the unit's position is above them

Blocks = list  # executor-specific handles (files, object refs) to Arrow tables


class Shuffle:
    """One global decision's data: the signature files of its units and block-level operations.

    `paths[i]` is unit i's signature file (absent when the unit kept no rows), `unit_keys[i]` its
    key; `side_dir` is where the step writes side tables and `decision_dir` the per-unit
    decision files the next stage reads; `records` is the number of signature rows.
    """

    def __init__(self, paths: list[str], unit_keys: list[str], side_dir: Path, decision_dir: Path,
                 records: int, partitions: int) -> None:
        self.paths, self.unit_keys = paths, unit_keys
        self.side_dir, self.decision_dir = Path(side_dir), Path(decision_dir)
        self.records, self.partitions = records, max(1, partitions)

    def __enter__(self) -> Shuffle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the decision's blocks hold (spill files, object refs)."""

    def rows(self, fn: Callable[[pa.Table, int], pa.Table], schema: pa.Schema | None) -> Blocks:
        """`fn(signature table of a unit, its first global row number)` over every unit (`schema`: of
        fn's tables, None when only fn knows it)."""
        raise NotImplementedError

    def map(self, blocks: Blocks, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        raise NotImplementedError

    def shuffle(self, blocks: Blocks, key: str, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        """Hash-partition rows by `key` (each key's rows meet in one call), then `fn` per partition."""
        raise NotImplementedError

    def tables(self, blocks: Blocks) -> Iterator[pa.Table]:
        """The blocks themselves, one at a time (for small results: tallies, counts)."""
        raise NotImplementedError

    def total(self, blocks: Blocks, column: str) -> int:
        return sum(column_sum(table, column) for table in self.tables(blocks))

    def count(self, blocks: Blocks) -> int:
        return self.total(blocks, "")

    def unit_groups(self) -> list[list[tuple[int, str]]]:
        """(position, signature path) of the present units, dealt into at most `partitions` groups."""
        present = [(p, path) for p, path in enumerate(self.paths) if Path(path).exists()]
        return [present[i::self.partitions] for i in range(min(self.partitions, len(present)))]


def read_units(fn: Callable[[pa.Table, int], pa.Table], schema: pa.Schema | None, units: list[tuple[int, str]]
               ) -> pa.Table:
    """fn over these units (a group of `Shuffle.unit_groups`, never empty), as one block."""
    return pa.concat_tables(([schema.empty_table()] if schema else [])
                            + [fn(read_table(path), position << ROW_BITS) for position, path in units])


def split_by_key(block: pa.Table, key: str, partitions: int) -> tuple[pa.Table, ...]:
    """The rows of `block` in each of `partitions` hash partitions of `key`."""
    part = partition_of(block.column(key), partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    return tuple(block.take(pa.array(order[bounds[p]:bounds[p + 1]])) for p in range(partitions))


def partition_of(column: pa.ChunkedArray, partitions: int) -> np.ndarray:
    """Partition of each key: a fixed-seed hash, so equal keys meet whatever block they come from."""
    from instruct.dedup.text import fmix, token_hashes

    if pa.types.is_integer(column.type):
        hashes = fmix(column.to_numpy().astype(np.uint64))
    else:
        hashes = token_hashes(column.to_pylist())
    return (hashes % np.uint64(partitions)).astype(np.int64)


def reduce_pieces(fn: Callable[[pa.Table], pa.Table], pieces: Iterable[pa.Table]) -> pa.Table:
    return fn(pa.concat_tables(list(pieces)).combine_chunks())


def column_sum(block: pa.Table, column: str) -> int:
    """Sum of a column, or the row count for column ""."""
    return block.num_rows if not column else int(pc.sum(block.column(column)).as_py() or 0)


class SignatureStore:
    """Columns of given global rows, read from the memory-mapped signature files.

    Only a few files stay mapped: the pages a lookup touches count as resident memory while
    mapped, and `take` visits units in order, so keeping more open buys nothing.
    """

    def __init__(self, paths: list[str], keep_open: int = 2) -> None:
        self.paths, self.keep_open = paths, keep_open
        self._open: OrderedDict[int, pa.Table] = OrderedDict()

    def take(self, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """These rows (global numbers, sorted ascending) with these columns."""
        rows = np.asarray(rows, dtype=np.int64)
        units = rows >> ROW_BITS
        starts, sizes = segments(units)
        parts = [self._unit_rows(int(units[start]), rows[start:start + size] & ((1 << ROW_BITS) - 1), columns)
                 for start, size in zip(starts, sizes)]
        return pa.concat_tables(parts) if parts else self._table(0).select(columns).slice(0, 0)

    def _unit_rows(self, unit: int, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """Rows (ascending) of one unit, taken batch by batch: a take over the table would first join the
        column's chunks into one copy (a whole unit's shingle sets for a few rows)."""
        table = self._table(unit).select(columns)
        batches = table.to_batches()
        ends = np.cumsum([batch.num_rows for batch in batches])
        which = np.searchsorted(ends, rows, side="right")
        starts, sizes = segments(which)
        return pa.Table.from_batches([batches[which[start]].take(pa.array(
            rows[start:start + size] - (ends[which[start]] - batches[which[start]].num_rows)))
            for start, size in zip(starts, sizes)], schema=table.schema)

    def _table(self, unit: int) -> pa.Table:
        if unit not in self._open:
            self._open[unit] = read_table(self.paths[unit])
            if len(self._open) > self.keep_open:
                self._open.popitem(last=False)
        self._open.move_to_end(unit)
        return self._open[unit]


def global_rows(table: pa.Table, base: int) -> pa.Array:
    return pa.array(base + np.arange(table.num_rows, dtype=np.int64), pa.int64())


def segments(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and size of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    return starts, np.diff(np.concatenate([starts, [len(sorted_keys)]]))


def columns(batch: pa.Table, *names: str) -> list[np.ndarray]:
    return [batch.column(name).to_numpy() for name in names]


def edge_table(u: np.ndarray, v: np.ndarray) -> pa.Table:
    """Edges (u, v) as a table, duplicates removed."""
    pairs = np.unique(np.stack([u, v], axis=1), axis=0) if len(u) else np.zeros((0, 2), np.int64)
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def write_drops(path: Path, ids: list[str], reasons: list[str]) -> None:
    """One unit's decision file: the ids it drops, with reasons."""
    write_table(pa.table({"id": pa.array(ids, pa.string()), "reason": pa.array(reasons, pa.string())}), path)


def side_part(side_dir: Path, name: str, first_row: int) -> Path:
    """A part of side table NAME written by one partition; `merge_side_parts` joins them into NAME.arrow."""
    return Path(side_dir) / name / f"part-{first_row:016x}.arrow"


def merge_side_parts(side_dir: Path, schemas: dict[str, pa.Schema]) -> None:
    """Join each NAME/part-*.arrow into NAME.arrow in global row order (their `row` column), dropping
    `row`; a table no partition wrote is written empty. Side tables thus have one layout whichever
    executor or partitioning wrote them."""
    import shutil

    for name, schema in schemas.items():
        folder = Path(side_dir) / name
        parts = [read_table(p) for p in sorted(folder.glob("part-*.arrow"))]
        if parts:
            table = pa.concat_tables(parts)
            table = table.take(pc.sort_indices(table, [("row", "ascending")])).drop_columns(["row"])
        else:
            table = schema.empty_table()
        write_table(table.cast(schema), folder.with_suffix(".arrow"))
        shutil.rmtree(folder, ignore_errors=True)
