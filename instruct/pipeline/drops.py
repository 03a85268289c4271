"""From drop candidates to per-unit decision files over a `Shuffle`, by one rule on shared ids.

    every signature row + the candidate rows  ─shuffle by id─▶ which rows of each id drop
      ─shuffle by unit─▶ one decision file per unit, read by that unit's next stage

Rows sharing an id share their fate. Every global step ends here (dedup clusters, decontamination,
sentence dedup, percentile buckets, a user step's `reduce`), so the rule is written once.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.pipeline.shuffle import ROW_BITS, Blocks, Shuffle, global_rows, segments, write_drops

CANDIDATES = pa.schema([("row", pa.int64()), ("id", pa.string()), ("candidate", pa.bool_()),
                        ("reason", pa.string())])


def drop_rows(shuffle: Shuffle, candidates: Blocks, reason: str | None, drop_if_any: bool) -> dict[str, int]:
    """Apply the id rule to candidate rows (row, id, and a `reason` column unless `reason` is given);
    write per-unit decisions; return the tallies `dropped` (ids) and `shared_ids`.

    `drop_if_any`: an id any candidate carries drops all its rows (decontamination, filters);
    otherwise an id some non-candidate row carries is kept (a cluster's kept member).
    """
    rows = shuffle.rows(_all_rows, CANDIDATES) + shuffle.map(candidates, partial(_as_candidates, reason))
    fate = shuffle.shuffle(rows, "id", partial(_id_fate, drop_if_any))
    tallies = {"dropped": shuffle.total(fate, "dropped_ids"), "shared_ids": shuffle.total(fate, "shared")}
    if tallies["dropped"]:
        shuffle.count(shuffle.shuffle(shuffle.map(fate, _with_unit), "unit", partial(
            _write_unit_decisions, str(shuffle.decision_dir), shuffle.unit_keys)))
    return tallies


def _all_rows(table: pa.Table, base: int) -> pa.Table:
    return pa.table({"row": global_rows(table, base), "id": table.column("id").combine_chunks(),
                     "candidate": pa.array(np.zeros(table.num_rows, dtype=bool)),
                     "reason": pa.nulls(table.num_rows, pa.string())})


def _as_candidates(reason: str | None, batch: pa.Table) -> pa.Table:
    reasons = batch.column("reason") if reason is None else pa.array([reason] * batch.num_rows, pa.string())
    return pa.table({"row": batch.column("row"), "id": batch.column("id"),
                     "candidate": pa.array(np.ones(batch.num_rows, dtype=bool)), "reason": reasons})


def _id_fate(drop_if_any: bool, batch: pa.Table) -> pa.Table:
    """Group rows by id and decide which rows to drop, with the per-id tallies the reports need.

    Input: every signature row (candidate false) plus a copy of each drop candidate (true).
    A dropped id's rows all take the reason of its first candidate (in row order).
    Output: the rows to drop (`drop`), plus a tally row for each id carried by several rows.
    """
    ids = np.array(batch.column("id").to_pylist(), dtype=str)
    rows = batch.column("row").to_numpy()
    candidate = batch.column("candidate").to_numpy(zero_copy_only=False).astype(bool)
    order = np.lexsort((candidate, rows, ids))
    ids, rows, candidate = ids[order], rows[order], candidate[order]
    reasons = np.asarray(batch.column("reason").to_pylist(), dtype=object)[order]
    starts, sizes = segments(ids)
    candidates = np.add.reduceat(candidate.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
    records = sizes - candidates
    dropped_id = (candidates > 0) & (drop_if_any | (candidates == records))
    drop = np.repeat(dropped_id, sizes) & ~candidate
    group = np.repeat(np.arange(len(starts)), sizes)
    first_candidate = np.zeros(len(starts), np.int64)
    marked = np.flatnonzero(candidate)[::-1]
    first_candidate[group[marked]] = marked  # written last to first: the first candidate stays
    first = np.zeros(len(ids), dtype=bool)
    first[starts] = True
    shared = np.where(first, np.repeat(records - 1, sizes), 0)
    emit = drop | (shared > 0)
    return pa.table({"row": pa.array(rows[emit], pa.int64()), "id": pa.array(ids[emit], pa.string()),
                     "drop": pa.array(drop[emit]),
                     "reason": pa.array(np.where(drop, reasons[first_candidate[group]], None)[emit], pa.string()),
                     "dropped_ids": pa.array((first & np.repeat(dropped_id, sizes))[emit].astype(np.int64)),
                     "shared": pa.array(shared[emit], pa.int64())})


def _with_unit(batch: pa.Table) -> pa.Table:
    return batch.append_column("unit", pc.shift_right(batch.column("row"), ROW_BITS))


def _write_unit_decisions(decision_dir: str, unit_keys: list[str], batch: pa.Table) -> pa.Table:
    """Write the decision file of every unit in this partition (its dropped ids in row order)."""
    batch = batch.filter(batch.column("drop"))
    rows = batch.column("row").to_numpy()
    order = np.argsort(rows, kind="stable")
    ids = np.asarray(batch.column("id").to_pylist(), dtype=object)[order]
    reasons = np.asarray(batch.column("reason").to_pylist(), dtype=object)[order]
    units = rows[order] >> ROW_BITS
    starts, sizes = segments(units)
    for start, size in zip(starts, sizes):
        write_drops(Path(decision_dir) / f"{unit_keys[units[start]]}.arrow", list(ids[start:start + size]),
                    list(reasons[start:start + size]))
    return pa.table({"units": pa.array([len(starts)], pa.int64())})
