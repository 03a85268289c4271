"""From labelled rows to a decision over a `Shuffle`: clusters, the member each keeps, the drop set.

    clusters  ─shuffle by cluster─▶ keep one member (the step's priority) ─▶ drop candidates
    ─`pipeline.drops.drop_rows`─▶ one decision file per unit (an id some kept row carries is
    never dropped)

Shared by exact and near-dup removal (`decide_clusters`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from instruct.dedup.clusters import priority, priority_columns
from instruct.io.shards import write_table
from instruct.pipeline.drops import drop_rows
from instruct.pipeline.shuffle import Blocks, Shuffle, SignatureStore, columns, segments, side_part


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
