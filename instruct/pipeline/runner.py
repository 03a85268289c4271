"""Run a pipeline: read units, apply steps, write shards; resumable, atomic, fully accounted.

The steps are cut into *stages* at each global step. A stage processes every unit
independently (in a process pool); between stages the executor runs the global step's `decide`
over the signatures the workers wrote. Each unit of each stage ends by writing a small
`.stats.json`, written last and atomically: a unit with stats is done and is never redone,
which makes a killed run resumable at unit granularity with identical output.

The paths of a run folder are `executor.layout.RunLayout`'s; the executors that schedule
units and decisions live in `instruct.executor` (this module never imports them by name).
Dropped records go to `rejected/` in one schema whatever dropped them (`instruct.io.rejects`).
"""
from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from instruct.errors import USER_ERRORS, UnitError
from instruct.executor import make_executor
from instruct.executor.layout import RunLayout, unit_shards
from instruct.executor.stats import UnitStats, add_lengths
from instruct.io.readers import Reader, Reject, WorkUnit, open_reader
from instruct.io.rejects import read_rejects_table, step_rejects_table
from instruct.io.shards import ShardWriter, read_json, read_table, write_json, write_table
from instruct.pipeline.manifest import write_run_summary
from instruct.pipeline.recipe import Recipe, WriteConfig
from instruct.pipeline.registry import make_step
from instruct.pipeline.resume import (
    forget_changed_units,
    output_lock,
    owned_entries,
    run_identity,
    sweep_unclaimed,
    unit_fingerprint,
)
from instruct.pipeline.step import GlobalStep, Step


@dataclass
class Stage:
    """Per-unit steps, optionally followed by the global step that closes the stage."""

    index: int
    steps: list[Step]
    closing: GlobalStep | None = None


@dataclass
class Pipeline:
    """Everything a worker needs; pickles as configs only (steps re-run setup per process)."""

    reader: Reader
    stages: list[Stage]
    write: WriteConfig

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> "Pipeline":
        steps = [make_step(name, params) for name, params in recipe.step_specs()]
        seen: Counter = Counter()
        for step in steps:
            seen[step.label] += 1
            step.label = step.label if seen[step.label] == 1 else f"{step.label}#{seen[step.label]}"
        return cls(open_reader(recipe.read, strict=recipe.strict), split_stages(steps), recipe.write)

    @property
    def steps(self) -> list[Step]:
        return [s for stage in self.stages for s in stage.steps + ([stage.closing] if stage.closing else [])]


def split_stages(steps: list[Step]) -> list[Stage]:
    stages, current = [], []
    for step in steps:
        if isinstance(step, GlobalStep):
            stages.append(Stage(len(stages), current, step))
            current = []
        else:
            current.append(step)
    stages.append(Stage(len(stages), current, None))
    return stages


class UnitRun:
    """Processing of one unit in one stage: the only place rows are dropped and counted."""

    def __init__(self, pipeline: Pipeline, stage: Stage, unit: WorkUnit, layout: RunLayout):
        self.pipeline, self.stage, self.unit, self.layout = pipeline, stage, unit, layout
        self.stats = UnitStats(unit.key, stage.index)
        self.kept_writer = ShardWriter(*layout.kept_prefix(stage.index, unit.key, final_stage(stage)),
                                       pipeline.write.shard_size)
        self.rejected_writer = ShardWriter(*layout.rejected_prefix(stage.index, unit.key),
                                           pipeline.write.shard_size) if pipeline.write.keep_rejected else None
        self.signatures: list[pa.Table] = []
        self.read_rejects: list[pa.Table] = []
        self.current = "read"  # what runs now: the step an error is reported against

    def run(self) -> UnitStats:
        started = time.perf_counter()
        for table in self._input_tables():
            for step in self.stage.steps:
                table = self._apply(step, table)
            self.kept_writer.write(table)
            self.stats.kept += table.num_rows
            add_lengths(self.stats.lengths_kept, table)
            if self.stage.closing is not None and table.num_rows:
                self.current = self.stage.closing.label
                self.stage.closing.ensure_setup()
                self.signatures.append(self.stage.closing.signatures(table))
        kept = self.kept_writer.close()
        rejected = self.rejected_writer.close() if self.rejected_writer else []
        self.stats.outputs = [str(p.relative_to(self.layout.output))
                              for p in (kept if final_stage(self.stage) else []) + rejected]
        if self.signatures:
            write_table(pa.concat_tables(self.signatures), self.layout.signatures(self.stage.index, self.unit.key))
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _input_tables(self) -> Iterator[pa.Table]:
        if self.stage.index == 0:
            for batch in self.pipeline.reader.read_unit(self.unit):
                self.stats.read += batch.table.num_rows + len(batch.rejects)
                if batch.rejects:
                    self._reject_read(batch.rejects)
                yield batch.table
            return
        decision = load_decision(self.layout, self.stage.index - 1, self.unit.key)
        closing_name = self.pipeline.stages[self.stage.index - 1].closing.label
        for path in unit_shards(*self.layout.kept_prefix(self.stage.index - 1, self.unit.key, final=False)):
            table = read_table(path)
            self.stats.read += table.num_rows
            self.stats.step_in[closing_name] = self.stats.step_in.get(closing_name, 0) + table.num_rows
            ids = table.column("id").to_pylist()
            reasons = [decision.get(i) for i in ids]
            yield self._split(closing_name, table, reasons)

    def _apply(self, step: Step, table: pa.Table) -> pa.Table:
        self.stats.step_in[step.label] = self.stats.step_in.get(step.label, 0) + table.num_rows
        if table.num_rows == 0:
            return table
        self.current = step.label
        step.ensure_setup()
        result = step.apply(table)
        added = result.table.num_rows - table.num_rows  # a step may expand rows (and change the schema)
        if added < 0:
            raise RuntimeError(f"step {step.label} returned {-added} rows fewer than it got; drops need reasons")
        if added:
            self.stats.added[step.label] = self.stats.added.get(step.label, 0) + added
        for key, n in result.counters.items():
            bucket = self.stats.counters.setdefault(step.label, {})
            bucket[key] = bucket.get(key, 0) + n
        return self._split(step.label, result.table, result.reasons) if result.reasons else result.table

    def _split(self, step_name: str, table: pa.Table, reasons: list[str | None]) -> pa.Table:
        drop_mask = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
        if not drop_mask.any():
            return table
        dropped = table.filter(pa.array(drop_mask))
        dropped_reasons = [r for r in reasons if r is not None]
        self.stats.drop(step_name, dropped_reasons)
        add_lengths(self.stats.lengths_dropped, dropped)
        if self.rejected_writer:
            self.rejected_writer.write(step_rejects_table(dropped, step_name, dropped_reasons))
        return table.filter(pa.array(~drop_mask))

    def _reject_read(self, rejects: list[Reject]) -> None:
        self.stats.drop("read", [r.reason for r in rejects])
        if self.pipeline.write.keep_rejected:
            self.read_rejects.append(read_rejects_table(rejects))

    def flush_read_rejects(self) -> None:
        if self.read_rejects:
            path = write_table(pa.concat_tables(self.read_rejects), self.layout.read_rejects(self.unit.key))
            self.stats.outputs.append(str(path.relative_to(self.layout.output)))


def final_stage(stage: Stage) -> bool:
    return stage.closing is None


def load_decision(layout: RunLayout, stage_index: int, unit_key: str) -> dict[str, str]:
    """The id -> reason map of a finished global step, for one unit's rows only."""
    path = layout.decision(stage_index, unit_key)
    if not path.exists():
        return {}  # nothing of this unit was dropped
    table = read_table(path)
    return dict(zip(table.column("id").to_pylist(), table.column("reason").to_pylist()))


def run_unit(pipeline: Pipeline, stage_index: int, unit: WorkUnit, layout: RunLayout) -> dict[str, Any]:
    """Process one unit of one stage from scratch and mark it done; returns its stats (every executor calls this)."""
    stage = pipeline.stages[stage_index]
    _remove_partial_outputs(stage, unit, layout)
    unit_run = UnitRun(pipeline, stage, unit, layout)
    if stage_index == 0:
        unit_run.stats.fingerprint = unit_fingerprint(unit)  # before reading: a change while reading shows next run
    try:
        stats = unit_run.run()
    except USER_ERRORS:
        raise
    except Exception as error:  # the one message whichever executor ran the unit
        raise UnitError.from_exception(unit_run.current, unit.key, error) from None
    if stage_index == 0:
        unit_run.flush_read_rejects()
    data = stats.__dict__
    write_json(data, layout.stats(stage_index, unit.key))
    return data


def _remove_partial_outputs(stage: Stage, unit: WorkUnit, layout: RunLayout) -> None:
    """A unit interrupted mid-way may have left some of its files; it is redone from scratch."""
    for folder, prefix in (layout.rejected_prefix(stage.index, unit.key),
                           layout.kept_prefix(stage.index, unit.key, final_stage(stage))):
        for path in unit_shards(folder, prefix):
            path.unlink()
    if stage.index == 0:
        layout.read_rejects(unit.key).unlink(missing_ok=True)


def build(recipe: Recipe, recipe_data: dict[str, Any] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run a recipe end to end and return its manifest (also written to DIR/manifest.json)."""
    layout = RunLayout(Path(recipe.write.output))
    pipeline = Pipeline.from_recipe(recipe)
    executor = make_executor(recipe.executor, recipe.workers, show_progress)
    with output_lock(layout.output):
        started = time.perf_counter()
        start_or_resume(recipe, pipeline, layout)
        stage_stats = executor.run(pipeline, layout)
        sweep_unclaimed(layout.output,
                        {name for stage in stage_stats for unit in stage for name in unit.get("outputs", [])})
        return write_run_summary(recipe, recipe_data, pipeline, stage_stats, layout, time.perf_counter() - started)


def start_or_resume(recipe: Recipe, pipeline: Pipeline, layout: RunLayout) -> None:
    """Resume only the same work (pipeline/resume.py): a changed identity starts the folder over,
    changed or vanished inputs redo their units.

    Workers, executor and --strict do not change results and may differ between runs.
    """
    identity = run_identity(recipe, pipeline.steps)
    output, marker = layout.output, layout.identity
    side_folders = [stage.closing.label for stage in pipeline.stages if stage.closing is not None]
    ours = owned_entries(output, [".work", "shards", "rejected", *side_folders, "manifest.json", "report.html"])
    if marker.exists() and read_json(marker) == identity:
        forget_changed_units(len(pipeline.stages), pipeline.reader.units(), layout)
        return
    for name in ours:
        target = output / name
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    write_json(identity, marker)
