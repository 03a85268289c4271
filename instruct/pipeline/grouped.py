"""The pass 2 of a global step that writes only a `reduce`: group its signature rows, reduce each group.

    signature rows ─shuffle by `group_by`─▶ `step.reduce(group)` per value ─▶ drop set
    (`pipeline.drops`, every row of a dropped id) and the groups' counters, reports, side tables

A group is every signature row with one `group_by` value (every row of the run when the step
has none), in shard and row order, so a reduce sees what a single process would. Counters are
summed over the groups; reports merge key by key (dicts are joined, numbers summed, anything
else taken from the last group by first row); a side table NAME (declared in `side_schemas`)
gets each group's rows in the order of the groups' first rows.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.io.shards import write_table
from instruct.pipeline.drops import drop_rows
from instruct.pipeline.shuffle import Shuffle, global_rows, segments, side_part

ROW = "__row"  # the global row number the shuffle adds to a signature row
ONE_GROUP = "__group"  # the key of a step without `group_by`: one value, one group


@dataclass
class Decision:
    """Outcome of a global step (or of one `reduce` group): id -> drop reason, extra tallies, and
    named side tables."""

    drop: dict[str, str]
    counters: Counter = field(default_factory=Counter)
    side_tables: dict[str, pa.Table] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # goes into the manifest under the step


REDUCED = pa.schema([("row", pa.int64()), ("id", pa.string()), ("reason", pa.string()), ("summary", pa.string())])


def decide_by_groups(step: Any, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
    """Run `step.reduce` over each group of its signature rows; write the drops; return (counters, report)."""
    key = step.group_by or ONE_GROUP
    numbered = shuffle.rows(partial(_numbered, step.label, step.group_by), None)
    reduced = shuffle.shuffle(numbered, key, partial(_reduce_groups, step, key, str(shuffle.side_dir)))
    summaries = sorted((row, text) for table in shuffle.tables(shuffle.map(reduced, _summaries))
                       for row, text in zip(table.column("row").to_pylist(), table.column("summary").to_pylist()))
    counters: Counter = Counter()
    report: dict[str, Any] = {}
    for _, text in summaries:
        summary = json.loads(text)
        counters.update(summary["counters"])
        report = merge_reports(report, summary["report"])
    drop_rows(shuffle, shuffle.map(reduced, _drops), None, drop_if_any=True)
    return dict(counters), report


def merge_reports(into: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    merged = dict(into)
    for name, value in report.items():
        before = merged.get(name)
        if isinstance(before, dict) and isinstance(value, dict):
            merged[name] = {**before, **value}
        elif isinstance(before, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[name] = before + value
        else:
            merged[name] = value
    return merged


def _numbered(label: str, group_by: str | None, table: pa.Table, base: int) -> pa.Table:
    if group_by is None:
        table = table.append_column(ONE_GROUP, pa.array(np.zeros(table.num_rows, np.int64)))
    elif table.column(group_by).null_count:
        raise ValueError(f"{label}: signature column {group_by!r} (group_by) has nulls")
    return table.append_column(ROW, global_rows(table, base))


def _reduce_groups(step: Any, key: str, side_dir: str, batch: pa.Table) -> pa.Table:
    """`step.reduce` of every group in this partition: its drop candidates and one summary row per group."""
    batch = batch.take(pc.sort_indices(batch, [(key, "ascending"), (ROW, "ascending")]))
    starts, sizes = segments(batch.column(key).to_numpy(zero_copy_only=False))
    parts = []
    for start, size in zip(starts.tolist(), sizes.tolist()):
        group = batch.slice(start, size)
        rows = group.column(ROW).to_numpy()
        decision = step.reduce(group.drop_columns([c for c in (ROW, ONE_GROUP) if c in group.column_names]))
        ids = group.column("id").to_pylist()
        dropped = [i for i, row_id in enumerate(ids) if row_id in decision.drop]
        for name, table in decision.side_tables.items():
            if name not in step.side_schemas:
                raise ValueError(f"{step.label}: side table {name!r} is not declared in side_schemas")
            write_table(table.append_column("row", pa.array(np.full(table.num_rows, rows[0]), pa.int64())),
                        side_part(Path(side_dir), name, int(rows[0])))
        summary = json.dumps({"counters": dict(decision.counters), "report": decision.report})
        parts.append(pa.table({"row": pa.array(np.concatenate([rows[dropped], rows[:1]]), pa.int64()),
                               "id": pa.array([ids[i] for i in dropped] + [None], pa.string()),
                               "reason": pa.array([decision.drop[ids[i]] for i in dropped] + [None], pa.string()),
                               "summary": pa.array([None] * len(dropped) + [summary], pa.string())}))
    return pa.concat_tables([REDUCED.empty_table(), *parts])


def _summaries(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_valid(batch.column("summary"))).select(["row", "summary"])


def _drops(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch.column("summary"))).select(["row", "id", "reason"])
