"""Second pass of global steps on a Ray cluster, without funnelling data through the driver.

The local executor hands every signature to one `decide` call. Here the same decision is
computed from shuffles (hash partitions by key, then vectorised numpy work per partition):

    exact_dedup    rows ─shuffle by hash─▶ clusters
    minhash_dedup  rows ─explode to (band key, row)─shuffle by band key─▶ candidate pairs
                   (the step's own `candidate_pairs` per bucket) ─shuffle by row─▶ unique pairs
                   ─verify (the step's own checks)─▶ edges ─connected components─▶ clusters
    clusters       ─shuffle by cluster─▶ keep one member (the step's `priority`) ─shuffle by id─▶
                   drop set (an id some kept row carries is never dropped, as locally)
    decontaminate  rows with eval hits ─shuffle by id─▶ drop set (all rows of a hit id)
    drop set       ─shuffle by unit─▶ one decision file per unit, read by that unit's next stage

Connected components use the alternating large-star / small-star algorithm (Kiveris et al.,
"Connected Components in MapReduce and Beyond", SoCC 2014): O(log² n) rounds of two shuffles
over edges, each node's label converging to the smallest member of its component, the same
label union-find gives locally. Workers read signature columns they need straight from the
memory-mapped per-unit signature files (rows are addressed as unit << 32 | row), so only
small keys travel through shuffles. The driver holds scalars and one path per unit.

Row numbering, bucket order and tie-breaks follow shard order, so the kept rows, the drop set
and the decision counters equal the local executor's. One difference: locally a candidate pair
whose rows are already connected is skipped without a check (`skipped_pairs`); here every
unique pair is checked, so `verified_pairs` / `rejected_pairs` count all of them.
"""
from __future__ import annotations

import math
import shutil
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.executor.base import write_unit_decision
from instruct.executor.layout import RunLayout
from instruct.executor.ray_cluster import import_ray
from instruct.io.readers import WorkUnit
from instruct.io.shards import read_table, write_json, write_table
from instruct.pipeline.step import GlobalStep

ROW_BITS = 32  # row bits of a global row number; the unit's position is above them
ROWS_PER_PARTITION = 250_000  # shuffle partitions grow with the data so each stays small
MAX_ROUNDS = 64  # large-star/small-star converges in O(log² n) rounds; more means a bug


def supports(step: GlobalStep) -> bool:
    return step.name in DECIDERS


def decide_distributed(step: GlobalStep, stage_index: int, units: list[WorkUnit], layout: RunLayout,
                       cpus: int, rows: int) -> None:
    """Compute and store a global step's decision with Ray; its done marker is written last."""
    shutil.rmtree(layout.decision_dir(stage_index), ignore_errors=True)  # a half-done attempt
    shutil.rmtree(layout.side_dir(step.label), ignore_errors=True)
    job = Job(import_ray(), step, [str(layout.signatures(stage_index, unit.key)) for unit in units],
              [unit.key for unit in units], layout, stage_index, rows,
              max(2 * cpus, math.ceil(rows / ROWS_PER_PARTITION)))
    counters, report = DECIDERS[step.name](job)
    write_json({"counters": counters, "report": report}, layout.decision_done(stage_index))


class Job:
    """One distributed decision: the step, where its signatures are, and block-level operations.

    A distributed table is a list of object refs to Arrow tables (blocks) in Ray's object
    store; the driver never fetches a block, only per-block scalars. Shuffles are plain Ray
    tasks (split each block by key hash, then one task per partition), which start in
    milliseconds where a Ray Data hash shuffle starts aggregator actors each time, and
    connected components need three shuffles per round.
    """

    def __init__(self, ray: Any, step: GlobalStep, paths: list[str], unit_keys: list[str], layout: RunLayout,
                 stage_index: int, records: int, partitions: int) -> None:
        self.ray, self.step, self.paths, self.unit_keys = ray, step, paths, unit_keys
        self.layout, self.stage_index = layout, stage_index
        self.records, self.partitions = records, partitions
        self._tasks = {name: ray.remote(fn) for name, fn in
                       (("read", _read_units), ("apply", _apply), ("split", _split), ("reduce", _reduce),
                        ("sum", _column_sum))}

    @property
    def side_dir(self) -> Path:
        """Where the step's side tables go (the same folder the local executor writes)."""
        return self.layout.side_dir(self.step.label)

    def rows(self, fn: Callable[[pa.Table, int], pa.Table], schema: pa.Schema) -> Blocks:
        """`fn(signature table of a unit, its first global row number)` over every unit, in parallel."""
        present = [(p, path) for p, path in enumerate(self.paths) if Path(path).exists()]
        groups = [present[i::self.partitions] for i in range(min(self.partitions, len(present)))]
        return [self._tasks["read"].remote(fn, schema, group) for group in groups]

    def map(self, blocks: Blocks, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        return [self._tasks["apply"].remote(fn, block) for block in blocks]

    def shuffle(self, blocks: Blocks, key: str, fn: Callable[[pa.Table], pa.Table]) -> Blocks:
        """Hash-partition rows by `key` (each key's rows meet in one task), then `fn` per partition."""
        n = self.partitions
        if not blocks:
            return []
        split = [self._tasks["split"].options(num_returns=n).remote(block, key, n) for block in blocks]
        split = [parts if n > 1 else [parts] for parts in split]
        return [self._tasks["reduce"].remote(fn, *[parts[p] for parts in split]) for p in range(n)]

    def total(self, blocks: Blocks, column: str) -> int:
        return int(sum(self.ray.get([self._tasks["sum"].remote(block, column) for block in blocks])))

    def count(self, blocks: Blocks) -> int:
        return self.total(blocks, "")


Blocks = list  # object refs to pyarrow Tables


def _read_units(fn: Callable[[pa.Table, int], pa.Table], schema: pa.Schema, units: list[tuple[int, str]]
                ) -> pa.Table:
    return pa.concat_tables([schema.empty_table()] + [fn(read_table(path), position << ROW_BITS)
                                                       for position, path in units])


def _apply(fn: Callable[[pa.Table], pa.Table], block: pa.Table) -> pa.Table:
    return fn(block)


def _split(block: pa.Table, key: str, partitions: int) -> tuple[pa.Table, ...] | pa.Table:
    part = partition_of(block.column(key), partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    pieces = tuple(block.take(pa.array(order[bounds[p]:bounds[p + 1]])) for p in range(partitions))
    return pieces if partitions > 1 else pieces[0]


def partition_of(column: pa.ChunkedArray, partitions: int) -> np.ndarray:
    """Partition of each key: a fixed-seed hash, so equal keys meet whatever block they come from."""
    from instruct.dedup.text import fmix, token_hashes

    if pa.types.is_integer(column.type):
        hashes = fmix(column.to_numpy().astype(np.uint64))
    else:
        hashes = token_hashes(column.to_pylist())
    return (hashes % np.uint64(partitions)).astype(np.int64)


def _reduce(fn: Callable[[pa.Table], pa.Table], *pieces: pa.Table) -> pa.Table:
    return fn(pa.concat_tables(pieces).combine_chunks())


def _column_sum(block: pa.Table, column: str) -> int:
    """Sum of a column, or the row count for column ""."""
    return block.num_rows if not column else int(pc.sum(block.column(column)).as_py() or 0)


class SignatureStore:
    """Columns of given global rows, read from the memory-mapped signature files (a few kept open)."""

    def __init__(self, paths: list[str], keep_open: int = 64) -> None:
        self.paths, self.keep_open = paths, keep_open
        self._open: OrderedDict[int, pa.Table] = OrderedDict()

    def take(self, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """These rows (global numbers, sorted ascending) with these columns."""
        rows = np.asarray(rows, dtype=np.int64)
        units = rows >> ROW_BITS
        starts, sizes = _segments(units)
        parts = [self._table(int(units[start])).select(columns).take(
                 pa.array(rows[start:start + size] & ((1 << ROW_BITS) - 1))) for start, size in zip(starts, sizes)]
        return pa.concat_tables(parts) if parts else self._table(0).select(columns).slice(0, 0)

    def _table(self, unit: int) -> pa.Table:
        if unit not in self._open:
            self._open[unit] = read_table(self.paths[unit])
            if len(self._open) > self.keep_open:
                self._open.popitem(last=False)
        self._open.move_to_end(unit)
        return self._open[unit]


def global_rows(table: pa.Table, base: int) -> pa.Array:
    return pa.array(base + np.arange(table.num_rows, dtype=np.int64), pa.int64())


def _segments(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and size of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    return starts, np.diff(np.concatenate([starts, [len(sorted_keys)]]))


def _edges(u: np.ndarray, v: np.ndarray) -> pa.Table:
    """Edges as a table, duplicates removed."""
    pairs = np.unique(np.stack([u, v], axis=1), axis=0) if len(u) else np.zeros((0, 2), np.int64)
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def _numpy(batch: pa.Table, *names: str) -> list[np.ndarray]:
    return [batch.column(name).to_numpy() for name in names]


# --- connected components -------------------------------------------------------------------

def _both_directions(batch: pa.Table) -> pa.Table:
    u, v = _numpy(batch, "u", "v")
    return pa.table({"u": np.concatenate([u, v]), "v": np.concatenate([v, u])})


def _by_node(batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    u, v = _numpy(batch, "u", "v")
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts, sizes = _segments(u)
    smallest_neighbour = np.minimum.reduceat(v, starts) if len(v) else v
    return u, v, starts, sizes, smallest_neighbour


def _large_star(batch: pa.Table) -> pa.Table:
    """Per node x: link each neighbour larger than x to the smallest of x and its neighbours."""
    u, v, starts, sizes, smallest_neighbour = _by_node(batch)
    smallest = np.repeat(np.minimum(u[starts], smallest_neighbour), sizes)
    larger = v > u
    return _edges(v[larger], smallest[larger])


def _small_star(batch: pa.Table) -> pa.Table:
    """Per node x with its smaller neighbours: link x and each of them to the smallest one."""
    u, v, starts, sizes, smallest_neighbour = _by_node(batch)
    nodes = np.concatenate([u[starts], v])
    links = np.concatenate([smallest_neighbour, np.repeat(smallest_neighbour, sizes)])
    keep = nodes != links
    return _edges(nodes[keep], links[keep])


def _roles(batch: pa.Table) -> pa.Table:
    u, v = _numpy(batch, "u", "v")
    return pa.table({"node": np.concatenate([u, v]),
                     "first": np.concatenate([np.ones(len(u), np.int64), np.zeros(len(v), np.int64)])})


def _star_violations(batch: pa.Table) -> pa.Table:
    """Nodes that keep the edges from being stars around each component's smallest node."""
    node, first = _numpy(batch, "node", "first")
    order = np.argsort(node, kind="stable")
    starts, sizes = _segments(node[order])
    as_first = np.add.reduceat(first[order], starts) if len(starts) else np.zeros(0, np.int64)
    bad = (as_first > 1) | ((as_first >= 1) & (as_first < sizes))
    return pa.table({"bad": pa.array([int(bad.sum())], pa.int64())})


def connected_components(job: Job, edges: Blocks) -> Blocks:
    """Edges (u, v) -> (u, v) for every node u of a component but its smallest, v = the smallest.

    Edges are oriented larger -> smaller after each round; the loop ends when they form
    stars around each component's smallest node (no node both points and is pointed at,
    none points twice), which is the fixed point of large-star followed by small-star.
    """
    for _ in range(MAX_ROUNDS):
        edges = job.shuffle(job.map(edges, _both_directions), "u", _large_star)
        edges = job.shuffle(edges, "u", _small_star)
        if job.total(job.shuffle(job.map(edges, _roles), "node", _star_violations), "bad") == 0:
            return edges
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


# --- clusters -> kept member -> drop set ------------------------------------------------------

def _clusters(step: Any, paths: list[str], side_dir: str, batch: pa.Table) -> pa.Table:
    """Per component (rows u labelled v, and v): its clusters and the member each one keeps.

    With a similarity check (near dedup), the component is split as the step does locally
    (`split_by_representative`: members best-first join the first kept member they are similar
    to); then each cluster keeps its best member by the step's priority.
    """
    from instruct.dedup.clusters import priority, priority_columns

    u, v = _numpy(batch, "u", "v")
    pairs = np.unique(np.stack([np.concatenate([v, u]), np.concatenate([v, v])], axis=1), axis=0)
    members, labels = pairs[:, 0], pairs[:, 1]  # sorted by member
    check = _check_columns(step)
    extra = list(priority_columns(pa.table({"meta": pa.array([], pa.string())}), [], step.config))
    info = SignatureStore(paths).take(members, ["id"] + extra + check)
    ids = np.asarray(info.column("id").to_pylist(), dtype=object)
    rank = priority(info, step.config)
    components = labels
    if check:
        from instruct.dedup.lsh import split_by_representative

        local, _ = split_by_representative(np.searchsorted(members, labels), rank, _similarity(step, info))
        labels = members[local]
    order = np.lexsort((members, rank, labels))  # each cluster's best member first
    starts, sizes = _segments(labels[order])
    best = np.zeros(len(members), dtype=bool)
    best[order[starts]] = True
    size = np.empty(len(members), np.int64)
    size[order] = np.repeat(sizes, sizes)
    cluster = np.empty(len(members), object)
    cluster[order] = np.repeat(ids[order[starts]], sizes)
    grouped = size > 1
    if grouped.any():
        write_table(pa.table({"id": pa.array(ids[grouped], pa.string()),
                              "cluster": pa.array(cluster[grouped], pa.string()),
                              "size": pa.array(size[grouped], pa.int64()), "kept": pa.array(best[grouped])}),
                    Path(side_dir) / "clusters" / f"part-{int(members[0]):016x}.arrow")
    return pa.table({"row": pa.array(members, pa.int64()), "id": pa.array(ids, pa.string()),
                     "candidate": pa.array(grouped & ~best), "kept": pa.array((grouped & best).astype(np.int64)),
                     "grouped": pa.array(grouped.astype(np.int64)),
                     "splits": pa.array(best.astype(np.int64) - (members == components).astype(np.int64))})


def _check_columns(step: Any) -> list[str]:
    """Signature columns the step's pairwise check reads (none: every candidate pair counts)."""
    return {"jaccard": ["shingles"], "signature": ["minhash"]}.get(getattr(step.config, "verify", "none"), [])


def _similarity(step: Any, table: pa.Table) -> Callable[[int, int], bool]:
    """The step's own check over rows of `table` (positions), exact Jaccard or signature agreement."""
    from instruct.dedup.lsh import jaccard_check, signature_check
    from instruct.dedup.minhash import minhash_matrix
    from instruct.dedup.text import ShingleBatch

    config = step.config
    if config.verify == "jaccard":
        return jaccard_check(ShingleBatch.from_arrow(table.column("shingles")), config.threshold)
    return signature_check(minhash_matrix(table.column("minhash"), config.num_perm), config.threshold)


def _id_fate(drop_if_any: bool, batch: pa.Table) -> pa.Table:
    """Group rows by id and decide which rows to drop, with the per-id tallies the reports need.

    Input: every signature row (candidate false) plus a copy of each drop candidate (true).
    Clusters drop an id only when no kept row carries it (`drop_if_any` false, as locally);
    decontamination drops every row of an id that a contaminated row carries.
    Output: the rows to drop (`drop`), plus a tally row for each id carried by several rows.
    """
    ids = np.array(batch.column("id").to_pylist(), dtype=str)
    rows = batch.column("row").to_numpy()
    candidate = batch.column("candidate").to_numpy(zero_copy_only=False).astype(bool)
    order = np.lexsort((candidate, rows, ids))
    ids, rows, candidate = ids[order], rows[order], candidate[order]
    starts, sizes = _segments(ids)
    candidates = np.add.reduceat(candidate.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
    records = sizes - candidates
    dropped_id = (candidates > 0) & (drop_if_any | (candidates == records))
    drop = np.repeat(dropped_id, sizes) & ~candidate
    first = np.zeros(len(ids), dtype=bool)
    first[starts] = True
    shared = np.where(first, np.repeat(records - 1, sizes), 0)
    emit = drop | (shared > 0)
    return pa.table({"row": pa.array(rows[emit], pa.int64()), "id": pa.array(ids[emit], pa.string()),
                     "drop": pa.array(drop[emit]),
                     "dropped_ids": pa.array((first & np.repeat(dropped_id, sizes))[emit].astype(np.int64)),
                     "shared": pa.array(shared[emit], pa.int64())})


def _write_unit_decisions(layout: RunLayout, stage_index: int, unit_keys: list[str], reason: str,
                          batch: pa.Table) -> pa.Table:
    """Write the decision file of every unit in this partition (its dropped ids in row order)."""
    batch = batch.filter(batch.column("drop"))
    rows = batch.column("row").to_numpy()
    order = np.argsort(rows, kind="stable")
    ids = np.asarray(batch.column("id").to_pylist(), dtype=object)[order]
    units = rows[order] >> ROW_BITS
    starts, sizes = _segments(units)
    for start, size in zip(starts, sizes):
        write_unit_decision(layout, stage_index, unit_keys[units[start]], list(ids[start:start + size]),
                            [reason] * int(size))
    return pa.table({"units": pa.array([len(starts)], pa.int64())})


def _with_unit(batch: pa.Table) -> pa.Table:
    return batch.append_column("unit", pc.shift_right(batch.column("row"), ROW_BITS))


def _as_candidates(batch: pa.Table) -> pa.Table:
    return pa.table({"row": batch.column("row"), "id": batch.column("id"),
                     "candidate": pa.array(np.ones(batch.num_rows, dtype=bool))})


def _all_rows(table: pa.Table, base: int) -> pa.Table:
    return pa.table({"row": global_rows(table, base), "id": table.column("id").combine_chunks(),
                     "candidate": pa.array(np.zeros(table.num_rows, dtype=bool))})


def drop_rows(job: Job, candidates: Blocks, reason: str, drop_if_any: bool) -> dict[str, int]:
    """Apply the id rule to candidate rows (row, id); write per-unit decisions; return tallies."""
    schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("candidate", pa.bool_())])
    rows = job.rows(_all_rows, schema) + job.map(candidates, _as_candidates)
    fate = job.shuffle(rows, "id", partial(_id_fate, drop_if_any))
    tallies = {"dropped": job.total(fate, "dropped_ids"), "shared_ids": job.total(fate, "shared")}
    if tallies["dropped"]:
        job.count(job.shuffle(job.map(fate, _with_unit), "unit", partial(
            _write_unit_decisions, job.layout, job.stage_index, job.unit_keys, reason)))
    return tallies


def _candidates_only(batch: pa.Table) -> pa.Table:
    return batch.filter(batch.column("candidate")).select(["row", "id"])


def decide_clusters(job: Job, labelled: Blocks | None, reason: str, report: dict[str, Any]
                    ) -> tuple[dict[str, int], dict[str, Any]]:
    """Clusters (u labelled v) -> kept members -> drop set; counters and report as the local step's."""
    if labelled is not None and job.count(labelled):
        members = job.shuffle(labelled, "v", partial(_clusters, job.step, job.paths, str(job.side_dir)))
        clusters, in_clusters = job.total(members, "kept"), job.total(members, "grouped")
        splits = job.total(members, "splits")
        candidates = job.map(members, _candidates_only)
    else:
        clusters = in_clusters = splits = 0
        candidates = []
    if _check_columns(job.step):
        report["chain_splits"] = splits
    tallies = drop_rows(job, candidates, reason, drop_if_any=False)
    report = {**report, "records": job.records, "clusters": clusters, "records_in_clusters": in_clusters,
              "dropped": tallies["dropped"], "shared_ids": tallies["shared_ids"]}
    return {"clusters": clusters, reason: tallies["dropped"]}, report


# --- the steps --------------------------------------------------------------------------------

def _hash_rows(table: pa.Table, base: int) -> pa.Table:
    digests = table.column("hash").combine_chunks()
    words = np.frombuffer(digests.buffers()[1], dtype=">u8")[2 * digests.offset:2 * (digests.offset + len(digests))]
    words = words.astype(np.uint64).reshape(-1, 2)
    return pa.table({"row": global_rows(table, base), "h0": words[:, 0], "h1": words[:, 1]})


def _same_hash(batch: pa.Table) -> pa.Table:
    """Each row whose 128-bit hash an earlier row has, labelled with that earlier row."""
    row, h0, h1 = _numpy(batch, "row", "h0", "h1")
    order = np.lexsort((row, h1, h0))
    row, h0, h1 = row[order], h0[order], h1[order]
    new = np.ones(len(row), dtype=bool)
    new[1:] = (h0[1:] != h0[:-1]) | (h1[1:] != h1[:-1])
    first = row[np.maximum.accumulate(np.where(new, np.arange(len(row)), 0))]
    return pa.table({"u": pa.array(row[~new], pa.int64()), "v": pa.array(first[~new], pa.int64())})


def exact_dedup(job: Job) -> tuple[dict[str, int], dict[str, Any]]:
    hashes = job.rows(_hash_rows, pa.schema([("row", pa.int64()), ("h0", pa.uint64()), ("h1", pa.uint64())]))
    labelled = job.shuffle(hashes, "h0", _same_hash)
    config = job.step.config
    return decide_clusters(job, labelled, "exact_duplicate", {"normalise": config.normalise, "keep": config.keep})


def _band_rows(num_perm: int, bands: int, rows: int, table: pa.Table, base: int) -> pa.Table:
    from instruct.dedup.lsh import band_keys
    from instruct.dedup.minhash import minhash_matrix

    present = np.flatnonzero(table.column("shingle_count").to_numpy() > 0)
    keys = band_keys(minhash_matrix(table.column("minhash"), num_perm)[present], bands, rows)
    return pa.table({"band": np.tile(np.arange(bands, dtype=np.int32), len(present)), "key": keys.reshape(-1),
                     "row": np.repeat(base + present, bands)})


def _bucket_pairs(batch: pa.Table) -> pa.Table:
    """Candidate pairs of every (band, key) bucket in this partition, by the step's own rule.

    `candidate_pairs` gets positions within the band (it packs a pair into one int64 as
    i * n + j, which global row numbers, unit << 32 | row, would overflow); rows ascend within
    a band, so mapping positions back to rows keeps i < j and the pairs' order.
    """
    from instruct.dedup.lsh import candidate_pairs

    band, key, row = _numpy(batch, "band", "key", "row")
    order = np.lexsort((row, band))
    band, key, row = band[order], key[order], row[order]
    starts, sizes = _segments(band)
    found = [row[s:s + n][candidate_pairs(key[s:s + n].reshape(-1, 1))] for s, n in zip(starts, sizes)]
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def _unique_edges(batch: pa.Table) -> pa.Table:
    return _edges(*_numpy(batch, "u", "v"))


def _verify(step: Any, paths: list[str], batch: pa.Table) -> pa.Table:
    """Keep the candidate pairs that pass the step's check."""
    u, v = _numpy(batch, "u", "v")
    check = _check_columns(step)
    if not check or not len(u):
        return batch
    nodes = np.unique(np.concatenate([u, v]))
    similar = _similarity(step, SignatureStore(paths).take(nodes, check))
    i, j = np.searchsorted(nodes, u), np.searchsorted(nodes, v)
    passed = np.fromiter((similar(a, b) for a, b in zip(i.tolist(), j.tolist())), dtype=bool, count=len(u))
    return batch.filter(pa.array(passed))


def minhash_dedup(job: Job) -> tuple[dict[str, int], dict[str, Any]]:
    from instruct.dedup.lsh import candidate_probability

    step, config = job.step, job.step.config
    bands, rows = step.banding
    band_schema = pa.schema([("band", pa.int32()), ("key", pa.uint64()), ("row", pa.int64())])
    banded = job.rows(partial(_band_rows, config.num_perm, bands, rows), band_schema)
    found = job.shuffle(banded, "key", _bucket_pairs)
    pairs = job.shuffle(found, "u", _unique_edges)
    edges = job.map(pairs, partial(_verify, step, job.paths))
    candidates, verified = job.count(pairs), job.count(edges)
    labelled = connected_components(job, edges) if verified else None
    report = {"threshold": config.threshold, "ngram": config.ngram, "unit": config.unit,
              "num_perm": config.num_perm, "bands": bands, "rows": rows, "verify": config.verify,
              "keep": config.keep,
              "candidate_probability_at_threshold": round(candidate_probability(config.threshold, bands, rows), 4),
              "candidate_pairs": candidates, "verified_pairs": verified, "rejected_pairs": candidates - verified,
              "skipped_pairs": 0}
    return decide_clusters(job, labelled, "near_duplicate", report)


def _hit_rows(table: pa.Table, base: int) -> pa.Table:
    """The rows of a unit that overlap some eval item past the threshold."""
    rows = global_rows(table, base)
    hit = pc.greater(pc.list_value_length(table.column("hits")), 0)
    return pa.table({"row": rows, "id": table.column("id"), "hits": table.column("hits"),
                     "scores": table.column("scores")}).filter(hit)


def _write_contaminated(names: tuple[list[str], list[str]], side_dir: str, batch: pa.Table) -> pa.Table:
    """The `contaminated` side table of these rows: the best-scoring eval item of each."""
    if batch.num_rows:
        scores, hits = batch.column("scores").to_pylist(), batch.column("hits").to_pylist()
        best = [h[int(np.argmax(s))] for h, s in zip(hits, scores)]
        write_table(pa.table({"id": batch.column("id"), "eval_set": pa.array([names[0][b] for b in best], pa.string()),
                              "eval_id": pa.array([names[1][b] for b in best], pa.string()),
                              "score": pa.array([max(s) for s in scores], pa.float64()),
                              "items_hit": pa.array([len(h) for h in hits], pa.int64())}),
                    Path(side_dir) / "contaminated" / f"part-{int(batch.column('row')[0].as_py()):016x}.arrow")
    return pa.table({"rows": [batch.num_rows]})


def _hit_items(batch: pa.Table) -> pa.Table:
    return pa.table({"item": pc.list_flatten(batch.column("hits")).cast(pa.int64())})


def _count_items(batch: pa.Table) -> pa.Table:
    items, counts = np.unique(batch.column("item").to_numpy(), return_counts=True)
    return pa.table({"item": pa.array(items, pa.int64()), "records": pa.array(counts, pa.int64())})


def decontaminate(job: Job) -> tuple[dict[str, int], dict[str, Any]]:
    """Rows with eval hits -> drop every row of their ids; eval-item tallies are bounded by the eval sets."""
    step, config = job.step, job.step.config
    items = step.index.items
    schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("hits", pa.list_(pa.int64())),
                        ("scores", pa.list_(pa.float64()))])
    hits = job.rows(_hit_rows, schema)
    names = ([item.eval_set for item in items], [item.eval_id for item in items])
    job.count(job.map(hits, partial(_write_contaminated, names, str(job.side_dir))))
    counts = job.shuffle(job.map(hits, _hit_items), "item", _count_items)
    hit_count = dict(sorted((item, n) for block in job.ray.get(counts) for item, n in
                            zip(block.column("item").to_pylist(), block.column("records").to_pylist())))
    tallies = drop_rows(job, hits, "contaminated", drop_if_any=True)
    hit_items = pa.table({"eval_set": pa.array([items[i].eval_set for i in hit_count], pa.string()),
                          "eval_id": pa.array([items[i].eval_id for i in hit_count], pa.string()),
                          "records": pa.array(list(hit_count.values()), pa.int64())})
    write_table(hit_items, job.side_dir / "eval_hits.arrow")
    per_set: dict[str, dict[str, int]] = {}
    for index, item in enumerate(items):
        entry = per_set.setdefault(item.eval_set, {"items": 0, "items_hit": 0})
        entry["items"] += 1
        entry["items_hit"] += index in hit_count
    report = {"metric": config.metric, "threshold": config.threshold, "ngram": config.ngram,
              "eval_items": len(items), "eval_items_too_short": step.index.skipped,
              "eval_items_hit": len(hit_count), "records_dropped": tallies["dropped"], "eval_sets": per_set,
              "hit_items": hit_items.slice(0, 1000).to_pylist()}
    return {"contaminated": tallies["dropped"], "eval_items_hit": len(hit_count)}, report


DECIDERS: dict[str, Callable[[Job], tuple[dict[str, int], dict[str, Any]]]] = {
    "exact_dedup": exact_dedup,
    "minhash_dedup": minhash_dedup,
    "decontaminate": decontaminate,
}
