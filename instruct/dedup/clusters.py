"""From clusters to a decision: which member each cluster keeps, and the clusters side table.

Shared by exact and near-dup removal. Rows are numbered globally in shard order, then row
order, so every choice (and every tie-break) is independent of how many workers ran.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from instruct.pipeline.step import Decision

KeepPolicy = Literal["first", "longest", "score"]
CLUSTERS = pa.schema([("id", pa.string()), ("cluster", pa.string()), ("size", pa.int64()), ("kept", pa.bool_())])


@dataclass
class KeepConfig:
    """Which member of a duplicate cluster survives."""

    keep: KeepPolicy = "first"  # first seen | longest text | highest meta score
    score_key: str = ""  # dotted path into meta for keep=score, e.g. "fineweb.score"


def check_keep(config: KeepConfig, where: str) -> None:
    from instruct.config import ConfigError

    if config.keep == "score" and not config.score_key:
        raise ConfigError(f"{where}: keep=score needs score_key (a dotted path into meta, e.g. 'quality.score')")


def meta_score(meta: str | None, path: str) -> float:
    """The number at a dotted path of a JSON meta string; NaN when missing or not a number."""
    node: Any = json.loads(meta) if meta else {}
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return math.nan
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else math.nan


def priority_columns(table: pa.Table, texts: list[str], config: KeepConfig) -> dict[str, pa.Array]:
    """Per-row inputs of the keep policy, stored with the signatures."""
    if config.keep == "longest":
        return {"length": pa.array([len(t) for t in texts], pa.int64())}
    if config.keep == "score":
        return {"score": pa.array([meta_score(m, config.score_key) for m in table.column("meta").to_pylist()],
                                  pa.float64())}
    return {}


def priority(signatures: pa.Table, config: KeepConfig) -> np.ndarray:
    """Lower is better; ties go to the earlier row."""
    if config.keep == "longest":
        return -signatures.column("length").to_numpy().astype(np.float64)
    if config.keep == "score":
        scores = signatures.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
        return np.where(np.isnan(scores), np.inf, -scores)  # rows without a score lose
    return np.zeros(signatures.num_rows)


def choose_keep(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Representative of each row's cluster: the member with the lowest (rank, index)."""
    n = len(labels)
    index = np.arange(n)
    order = np.lexsort((index, rank, labels))
    sorted_labels = labels[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_labels[1:] != sorted_labels[:-1]
    representative_of_label = np.empty(n, dtype=np.int64)
    representative_of_label[sorted_labels[first]] = order[first]
    return representative_of_label[labels]


def cluster_decision(ids: list[str], labels: np.ndarray, rank: np.ndarray, reason: str,
                     report: dict[str, Any]) -> Decision:
    """Drop every non-representative; side table `clusters` lists members of clusters of size > 1."""
    representative = choose_keep(labels, rank)
    sizes = np.bincount(labels, minlength=len(labels))[labels]
    kept = representative == np.arange(len(labels))
    kept_ids = {ids[i] for i in np.flatnonzero(kept)}
    # rows sharing an id share their fate: an id some kept row carries is never dropped
    drop = {ids[i]: reason for i in np.flatnonzero(~kept) if ids[i] not in kept_ids}
    members = np.flatnonzero(sizes > 1)
    clusters = pa.table({
        "id": pa.array([ids[i] for i in members], pa.string()),
        "cluster": pa.array([ids[representative[i]] for i in members], pa.string()),
        "size": pa.array(sizes[members], pa.int64()),
        "kept": pa.array(kept[members]),
    })
    n_clusters = int(np.count_nonzero(kept[members]))
    shared = sum(n - 1 for n in Counter(ids).values() if n > 1)
    report = {**report, "records": len(ids), "clusters": n_clusters, "records_in_clusters": len(members),
              "dropped": len(drop), "shared_ids": shared}
    return Decision(drop=drop, counters=Counter({"clusters": n_clusters, reason: len(drop)}),
                    side_tables={"clusters": clusters}, report=report)


def concat_signatures(tables: Any) -> pa.Table | None:
    """All signature tables in shard order as one table (None when there were no rows)."""
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None
