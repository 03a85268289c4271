"""Run a pipeline: read units, apply steps, write shards; resumable, atomic, fully accounted.

The steps are cut into *stages* at each global step. A stage processes every unit
independently (in a process pool); between stages the driver runs the global step's `decide`
over the signatures the workers wrote. Each unit of each stage ends by writing a small
`.stats.json`, written last and atomically: a unit with stats is done and is never redone,
which makes a killed run resumable at unit granularity with identical output.

Folder layout of a run:
    DIR/shards/*.arrow          kept records (DOCUMENT or EXAMPLE schema)
    DIR/rejected/*.arrow        dropped records, one schema (instruct/io/rejects.py) with `step` and `reason`
    DIR/<step>/...              side tables of global steps (e.g. dedup clusters)
    DIR/manifest.json           config, versions, input fingerprints, counts
    DIR/report.html             human report
    DIR/.work/                  per-stage intermediates and stats (resume state)
    DIR/.work/recipe.json       what decides the output; a different recipe starts the folder over
    DIR/.lock                   held by the running build (see pipeline/resume.py for what a re-run reuses)
"""
from __future__ import annotations

import glob
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from instruct.io.readers import Reader, Reject, WorkUnit, open_reader
from instruct.io.rejects import read_rejects_table, step_rejects_table
from instruct.io.shards import ShardWriter, read_json, read_table, write_json, write_table
from instruct.pipeline.recipe import Recipe, WriteConfig
from instruct.pipeline.registry import make_step
from instruct.pipeline.resume import (forget_changed_units, output_lock, owned_entries, run_identity,
                                      sweep_unclaimed, unit_fingerprint)
from instruct.pipeline.step import GlobalStep, Step
from instruct.progress import progress_bar

LENGTH_BINS = np.concatenate([[0], np.logspace(0, 7, 57)])  # characters, log-spaced up to 10M


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
            seen[step.name] += 1
            step.label = step.name if seen[step.name] == 1 else f"{step.name}#{seen[step.name]}"
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


@dataclass
class UnitStats:
    """Counts of one unit in one stage; summed into the manifest."""

    unit: str
    stage: int
    read: int = 0  # records that entered this stage for this unit (documents + read rejects)
    kept: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> reason -> n
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> name -> n
    step_in: dict[str, int] = field(default_factory=dict)  # step -> rows that reached it
    added: dict[str, int] = field(default_factory=dict)  # step -> rows it created (e.g. k templates per row)
    lengths_kept: list[int] = field(default_factory=lambda: [0] * (len(LENGTH_BINS) - 1))
    lengths_dropped: list[int] = field(default_factory=lambda: [0] * (len(LENGTH_BINS) - 1))
    seconds: float = 0.0
    fingerprint: str = ""  # of the unit's input files when it was read (stage 0): a change redoes the unit
    outputs: list[str] = field(default_factory=list)  # files it wrote under DIR (shards/..., rejected/...)

    def drop(self, step: str, reasons: list[str]) -> None:
        bucket = self.dropped.setdefault(step, {})
        for reason, n in Counter(reasons).items():
            bucket[reason] = bucket.get(reason, 0) + n


class UnitRun:
    """Processing of one unit in one stage: the only place rows are dropped and counted."""

    def __init__(self, pipeline: Pipeline, stage: Stage, unit: WorkUnit, workdir: Path, output: Path):
        self.pipeline, self.stage, self.unit = pipeline, stage, unit
        self.workdir, self.output = workdir, output
        self.stats = UnitStats(unit.key, stage.index)
        final = final_stage(stage)
        prefix = f"{unit.key}" if final else f"s{stage.index}-{unit.key}"
        self.kept_writer = ShardWriter(output / "shards" if final else workdir / f"stage{stage.index}",
                                       prefix, pipeline.write.shard_size)
        self.rejected_writer = ShardWriter(output / "rejected", f"s{stage.index}-{unit.key}",
                                           pipeline.write.shard_size) if pipeline.write.keep_rejected else None
        self.signatures: list[pa.Table] = []
        self.read_rejects: list[pa.Table] = []

    def run(self) -> UnitStats:
        started = time.perf_counter()
        for table in self._input_tables():
            for step in self.stage.steps:
                table = self._apply(step, table)
            self.kept_writer.write(table)
            self.stats.kept += table.num_rows
            _add_lengths(self.stats.lengths_kept, table)
            if self.stage.closing is not None and table.num_rows:
                self.signatures.append(self.stage.closing.signatures(table))
        kept = self.kept_writer.close()
        rejected = self.rejected_writer.close() if self.rejected_writer else []
        self.stats.outputs = [str(p.relative_to(self.output)) for p in (kept if final_stage(self.stage) else [])
                              + rejected]
        if self.signatures:
            write_table(pa.concat_tables(self.signatures), signature_path(self.workdir, self.stage.index, self.unit))
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
        previous = self.workdir / f"stage{self.stage.index - 1}"
        decision = load_decision(self.workdir, self.stage.index - 1, self.unit.key)
        closing_name = self.pipeline.stages[self.stage.index - 1].closing.label
        for path in unit_shards(previous, f"s{self.stage.index - 1}-{self.unit.key}"):
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
        _add_lengths(self.stats.lengths_dropped, dropped)
        if self.rejected_writer:
            self.rejected_writer.write(step_rejects_table(dropped, step_name, dropped_reasons))
        return table.filter(pa.array(~drop_mask))

    def _reject_read(self, rejects: list[Reject]) -> None:
        self.stats.drop("read", [r.reason for r in rejects])
        if self.pipeline.write.keep_rejected:
            self.read_rejects.append(read_rejects_table(rejects))

    def flush_read_rejects(self) -> None:
        if self.read_rejects:
            path = write_table(pa.concat_tables(self.read_rejects), self.output / "rejected" / f"read-{self.unit.key}.arrow")
            self.stats.outputs.append(str(path.relative_to(self.output)))


def final_stage(stage: Stage) -> bool:
    return stage.closing is None


def unit_shards(folder: Path, prefix: str) -> list[Path]:
    """The numbered shards `PREFIX-NNNN.arrow` of one unit, exactly (a longer unit key is another unit)."""
    pattern = re.compile(re.escape(prefix) + r"-\d{4}\.arrow")
    return sorted(p for p in folder.glob(f"{glob.escape(prefix)}-*.arrow") if pattern.fullmatch(p.name))


def _add_lengths(histogram: list[int], table: pa.Table) -> None:
    if table.num_rows == 0:
        return
    if "text" in table.column_names:
        lengths = [len(t or "") for t in table.column("text").to_pylist()]
    else:
        columns = [table.column(name).to_pylist() for name in ("messages", "prompt", "chosen")
                   if name in table.column_names]  # a PREFERENCE row counts its prompt and chosen answer
        if not columns:
            return
        lengths = [sum(len(m["content"] or "") for messages in row for m in messages or ()) for row in zip(*columns)]
    counts, _ = np.histogram(lengths, bins=LENGTH_BINS)
    for i, n in enumerate(counts):
        histogram[i] += int(n)


def load_decision(workdir: Path, stage_index: int, unit_key: str) -> dict[str, str]:
    """The id -> reason map of a finished global step, for one unit's rows only."""
    path = decision_path(workdir, stage_index, unit_key)
    if not path.exists():
        return {}  # nothing of this unit was dropped
    table = read_table(path)
    return dict(zip(table.column("id").to_pylist(), table.column("reason").to_pylist()))


def decision_path(workdir: Path, stage_index: int, unit_key: str) -> Path:
    """Decisions are stored per unit, so no process ever holds the whole drop set."""
    return workdir / f"decision{stage_index}" / f"{unit_key}.arrow"


def decision_done_path(workdir: Path, stage_index: int) -> Path:
    """Written last by a global step's second pass: its presence marks the decision done."""
    return workdir / f"decision{stage_index}.json"


def write_unit_decision(workdir: Path, stage_index: int, unit_key: str, ids: list[str], reasons: list[str]) -> None:
    write_table(pa.table({"id": pa.array(ids, pa.string()), "reason": pa.array(reasons, pa.string())}),
                decision_path(workdir, stage_index, unit_key))


_WORKER_PIPELINE: Pipeline | None = None


def _init_worker(pipeline: Pipeline) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = pipeline


def _run_unit_in_worker(stage_index: int, unit: WorkUnit, workdir: str, output: str) -> dict[str, Any]:
    return run_unit(_WORKER_PIPELINE, stage_index, unit, Path(workdir), Path(output))


def run_unit(pipeline: Pipeline, stage_index: int, unit: WorkUnit, workdir: Path, output: Path) -> dict[str, Any]:
    """Process one unit of one stage from scratch and mark it done; returns its stats."""
    stage = pipeline.stages[stage_index]
    _remove_partial_outputs(stage, unit, workdir, output)
    unit_run = UnitRun(pipeline, stage, unit, workdir, output)
    if stage_index == 0:
        unit_run.stats.fingerprint = unit_fingerprint(unit)  # before reading: a change while reading shows next run
    stats = unit_run.run()
    if stage_index == 0:
        unit_run.flush_read_rejects()
    data = stats.__dict__
    write_json(data, stats_path(workdir, stage_index, unit))
    return data


def stats_path(workdir: Path, stage_index: int, unit: WorkUnit) -> Path:
    return workdir / f"stage{stage_index}" / f"{unit.key}.stats.json"


def _remove_partial_outputs(stage: Stage, unit: WorkUnit, workdir: Path, output: Path) -> None:
    """A unit interrupted mid-way may have left some of its files; it is redone from scratch."""
    prefixes = [(output / "rejected", f"s{stage.index}-{unit.key}"),
                (output / "shards", unit.key) if final_stage(stage)
                else (workdir / f"stage{stage.index}", f"s{stage.index}-{unit.key}")]
    for folder, prefix in prefixes:
        for path in unit_shards(folder, prefix):
            path.unlink()
    if stage.index == 0:
        (output / "rejected" / f"read-{unit.key}.arrow").unlink(missing_ok=True)


class LocalExecutor:
    """Runs the stages of a pipeline over a process pool (or in-process for one worker)."""

    def __init__(self, workers: int = 1, show_progress: bool = True):
        self.workers = max(1, workers)
        self.show_progress = show_progress

    def run(self, pipeline: Pipeline, output: Path) -> list[list[dict[str, Any]]]:
        """Run every stage; returns the stats of every unit, per stage."""
        workdir = output / ".work"
        units = pipeline.reader.units()
        all_stats = []
        pool = None
        if self.workers > 1:
            pool = ProcessPoolExecutor(self.workers, mp_context=get_context("forkserver"),
                                       initializer=_init_worker, initargs=(pipeline,))
        try:
            for stage in pipeline.stages:
                def execute(todo: list[WorkUnit], stage: Stage = stage) -> Iterator[dict[str, Any]]:
                    if pool is None:
                        return (run_unit(pipeline, stage.index, unit, workdir, output) for unit in todo)
                    futures = [pool.submit(_run_unit_in_worker, stage.index, unit, str(workdir), str(output))
                               for unit in todo]
                    return (future.result() for future in futures)

                all_stats.append(run_stage(pipeline, stage, units, workdir, execute, self.show_progress))
                if stage.closing is not None:
                    decide_stage(pipeline, stage, units, workdir, output)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return all_stats


def run_stage(pipeline: Pipeline, stage: Stage, units: list[WorkUnit], workdir: Path,
              execute: Callable[[list[WorkUnit]], Iterable[dict[str, Any]]], show_progress: bool
              ) -> list[dict[str, Any]]:
    """Run the units of a stage not yet done through `execute` (any executor), with progress.

    `execute(todo)` yields the stats of each unit as it finishes, in any order.
    """
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for unit in units:
        path = stats_path(workdir, stage.index, unit)
        if path.exists():
            done[unit.key] = read_json(path)
        else:
            todo.append(unit)
    label = f"stage {stage.index + 1}/{len(pipeline.stages)}"
    with progress_bar(total=len(units), initial=len(done), desc=label, unit="unit", enabled=show_progress) as bar:
        started, records = time.perf_counter(), 0
        for stats in execute(todo):
            done[stats["unit"]] = stats
            records += stats["read"]
            bar.update(1)
            bar.set_postfix(docs_per_s=f"{records / max(time.perf_counter() - started, 1e-9):,.0f}")
    return [done[unit.key] for unit in units]


def decide_stage(pipeline: Pipeline, stage: Stage, units: list[WorkUnit], workdir: Path, output: Path) -> None:
    """Run a global step's second pass over all signatures, once (its decision file marks it done)."""
    if decision_done_path(workdir, stage.index).exists():
        return
    step = stage.closing
    step.ensure_setup()
    signature_paths = [signature_path(workdir, stage.index, unit) for unit in units]
    decision = step.decide(read_table(p) for p in signature_paths if p.exists())
    for name, table in decision.side_tables.items():
        write_table(table, output / step.label / f"{name}.arrow")
    for unit, path in zip(units, signature_paths):
        ids = read_table(path).column("id").to_pylist() if path.exists() else []
        dropped = [i for i in ids if i in decision.drop]
        if dropped:
            write_unit_decision(workdir, stage.index, unit.key, dropped, [decision.drop[i] for i in dropped])
    write_json({"counters": dict(decision.counters), "report": decision.report},
               decision_done_path(workdir, stage.index))


def signature_path(workdir: Path, stage_index: int, unit: WorkUnit) -> Path:
    return workdir / f"stage{stage_index}" / f"{unit.key}.sig.arrow"


def build(recipe: Recipe, recipe_data: dict[str, Any] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run a recipe end to end and return its manifest (also written to DIR/manifest.json)."""
    from instruct.pipeline.manifest import write_outputs

    output = Path(recipe.write.output)
    pipeline = Pipeline.from_recipe(recipe)
    if recipe.executor == "ray":
        from instruct.pipeline.ray_executor import RayExecutor

        executor: Any = RayExecutor(recipe.workers, show_progress)
    else:
        executor = LocalExecutor(recipe.workers, show_progress)
    with output_lock(output):
        started = time.perf_counter()
        start_or_resume(recipe, pipeline, output)
        stage_stats = executor.run(pipeline, output)
        sweep_unclaimed(output, {name for stage in stage_stats for unit in stage for name in unit.get("outputs", [])})
        return write_outputs(recipe, recipe_data, pipeline, stage_stats, output, time.perf_counter() - started)


def start_or_resume(recipe: Recipe, pipeline: Pipeline, output: Path) -> None:
    """Resume only the same work (pipeline/resume.py): a changed identity starts the folder over,
    changed or vanished inputs redo their units.

    Workers, executor and --strict do not change results and may differ between runs.
    """
    identity = run_identity(recipe, pipeline.steps)
    marker = output / ".work" / "recipe.json"
    side_folders = [stage.closing.label for stage in pipeline.stages if stage.closing is not None]
    ours = owned_entries(output, [".work", "shards", "rejected", *side_folders, "manifest.json", "report.html"])
    if marker.exists() and read_json(marker) == identity:
        forget_changed_units(len(pipeline.stages), pipeline.reader.units(), output / ".work")
        return
    for name in ours:
        target = output / name
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    write_json(identity, marker)
