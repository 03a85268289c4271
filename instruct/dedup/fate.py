"""From labelled rows to a decision over a `Shuffle`: clusters, the member each keeps, the drop set.

    clusters  ─shuffle by cluster─▶ keep one member (the step's priority) ─shuffle by id─▶
    drop set (an id some kept row carries is never dropped)  ─shuffle by unit─▶ one decision
    file per unit, read by that unit's next stage

Shared by exact and near-dup removal (`decide_clusters`) and decontamination (`drop_rows`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.dedup.clusters import priority, priority_columns
from instruct.io.shards import write_table
from instruct.pipeline.shuffle import (
    ROW_BITS,
    Blocks,
    Shuffle,
    SignatureStore,
    columns,
    global_rows,
    segments,
    side_part,
    write_drops,
)


def decide_clusters(shuffle: Shuffle, step: Any, labelled: Blocks | None, reason: str, report: dict[str, Any]
                    ) -> tuple[dict[str, int], dict[str, Any]]:
    """Clusters (rows u labelled v) -> kept members -> drop set; the step's counters and report."""
    if labelled is not None and shuffle.count(labelled):
        members = shuffle.shuffle(labelled, "v", partial(_clusters, step, shuffle.paths, str(shuffle.side_dir)))
        clusters, in_clusters = shuffle.total(members, "kept"), shuffle.total(members, "grouped")
        splits = shuffle.total(members, "splits")
        candidates = shuffle.map(members, _candidates_only)
    else:
        clusters = in_clusters = splits = 0
        candidates = []
    if step.check_columns():
        report["chain_splits"] = splits
    tallies = drop_rows(shuffle, candidates, reason, drop_if_any=False)
    report = {**report, "records": shuffle.records, "clusters": clusters, "records_in_clusters": in_clusters,
              "dropped": tallies["dropped"], "shared_ids": tallies["shared_ids"]}
    return {"clusters": clusters, reason: tallies["dropped"]}, report


def _clusters(step: Any, paths: list[str], side_dir: str, batch: pa.Table) -> pa.Table:
    """Per component (rows u labelled v, and v): its clusters and the member each one keeps.

    With a similarity check (near dedup), the component is split (`split_by_representative`:
    members best-first join the first kept member they are similar to); then each cluster keeps
    its best member by the step's priority.
    """
    from instruct.dedup.lsh import split_by_representative

    u, v = columns(batch, "u", "v")
    pairs = np.unique(np.stack([np.concatenate([v, u]), np.concatenate([v, v])], axis=1), axis=0)
    members, labels = pairs[:, 0], pairs[:, 1]  # sorted by member
    check = step.check_columns()
    extra = list(priority_columns(pa.table({"meta": pa.array([], pa.string())}), [], step.config))
    info = SignatureStore(paths).take(members, ["id"] + extra + check)
    ids = np.asarray(info.column("id").to_pylist(), dtype=object)
    rank = priority(info, step.config)
    components = labels
    if check:
        local, _ = split_by_representative(np.searchsorted(members, labels), rank, step.similarity(info))
        labels = members[local]
    order = np.lexsort((members, rank, labels))  # each cluster's best member first
    starts, sizes = segments(labels[order])
    best = np.zeros(len(members), dtype=bool)
    best[order[starts]] = True
    size = np.empty(len(members), np.int64)
    size[order] = np.repeat(sizes, sizes)
    cluster = np.empty(len(members), object)
    cluster[order] = np.repeat(ids[order[starts]], sizes)
    grouped = size > 1
    if grouped.any():
        write_table(pa.table({"row": pa.array(members[grouped], pa.int64()),
                                   "id": pa.array(ids[grouped], pa.string()),
                                   "cluster": pa.array(cluster[grouped], pa.string()),
                                   "size": pa.array(size[grouped], pa.int64()), "kept": pa.array(best[grouped])}),
                    side_part(Path(side_dir), "clusters", int(members[0])))
    return pa.table({"row": pa.array(members, pa.int64()), "id": pa.array(ids, pa.string()),
                     "candidate": pa.array(grouped & ~best), "kept": pa.array((grouped & best).astype(np.int64)),
                     "grouped": pa.array(grouped.astype(np.int64)),
                     "splits": pa.array(best.astype(np.int64) - (members == components).astype(np.int64))})


def _candidates_only(batch: pa.Table) -> pa.Table:
    return batch.filter(batch.column("candidate")).select(["row", "id"])


def drop_rows(shuffle: Shuffle, candidates: Blocks, reason: str, drop_if_any: bool) -> dict[str, int]:
    """Apply the id rule to candidate rows (row, id); write per-unit decisions; return tallies."""
    schema = pa.schema([("row", pa.int64()), ("id", pa.string()), ("candidate", pa.bool_())])
    rows = shuffle.rows(_all_rows, schema) + shuffle.map(candidates, _as_candidates)
    fate = shuffle.shuffle(rows, "id", partial(_id_fate, drop_if_any))
    tallies = {"dropped": shuffle.total(fate, "dropped_ids"), "shared_ids": shuffle.total(fate, "shared")}
    if tallies["dropped"]:
        shuffle.count(shuffle.shuffle(shuffle.map(fate, _with_unit), "unit", partial(
            _write_unit_decisions, str(shuffle.decision_dir), shuffle.unit_keys, reason)))
    return tallies


def _all_rows(table: pa.Table, base: int) -> pa.Table:
    return pa.table({"row": global_rows(table, base), "id": table.column("id").combine_chunks(),
                     "candidate": pa.array(np.zeros(table.num_rows, dtype=bool))})


def _as_candidates(batch: pa.Table) -> pa.Table:
    return pa.table({"row": batch.column("row"), "id": batch.column("id"),
                     "candidate": pa.array(np.ones(batch.num_rows, dtype=bool))})


def _id_fate(drop_if_any: bool, batch: pa.Table) -> pa.Table:
    """Group rows by id and decide which rows to drop, with the per-id tallies the reports need.

    Input: every signature row (candidate false) plus a copy of each drop candidate (true).
    Clusters drop an id only when no kept row carries it (`drop_if_any` false); decontamination
    drops every row of an id that a contaminated row carries.
    Output: the rows to drop (`drop`), plus a tally row for each id carried by several rows.
    """
    ids = np.array(batch.column("id").to_pylist(), dtype=str)
    rows = batch.column("row").to_numpy()
    candidate = batch.column("candidate").to_numpy(zero_copy_only=False).astype(bool)
    order = np.lexsort((candidate, rows, ids))
    ids, rows, candidate = ids[order], rows[order], candidate[order]
    starts, sizes = segments(ids)
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


def _with_unit(batch: pa.Table) -> pa.Table:
    return batch.append_column("unit", pc.shift_right(batch.column("row"), ROW_BITS))


def _write_unit_decisions(decision_dir: str, unit_keys: list[str], reason: str, batch: pa.Table) -> pa.Table:
    """Write the decision file of every unit in this partition (its dropped ids in row order)."""
    batch = batch.filter(batch.column("drop"))
    rows = batch.column("row").to_numpy()
    order = np.argsort(rows, kind="stable")
    ids = np.asarray(batch.column("id").to_pylist(), dtype=object)[order]
    units = rows[order] >> ROW_BITS
    starts, sizes = segments(units)
    for start, size in zip(starts, sizes):
        write_drops(Path(decision_dir) / f"{unit_keys[units[start]]}.arrow", list(ids[start:start + size]),
                    [reason] * int(size))
    return pa.table({"units": pa.array([len(starts)], pa.int64())})
