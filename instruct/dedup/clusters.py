"""From clusters to a decision: which member each cluster keeps, and the clusters side table.

Shared by exact and near-dup removal. Rows are numbered globally in shard order, then row
order, so every choice (and every tie-break) is independent of how many workers ran.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

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
