"""The one executor interface: the stage loop, resume by unit, and where a global decision runs.

`Executor.run` walks the stages; a subclass only says how to run a batch of units (`execute`)
and which `Shuffle` a global step's decision runs on (`shuffle`). A step whose decision is
written against the shuffle interface runs on it; any other global step decides in this
process over every signature (`decide_on_driver`). Units that finished in an earlier run (their
stats file exists) are not redone, and a decision whose done marker exists is not recomputed.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from instruct.executor.layout import RunLayout
from instruct.io.readers import WorkUnit
from instruct.io.shards import read_json, read_table, write_json, write_table
from instruct.pipeline.shuffle import Shuffle, merge_side_parts, write_drops
from instruct.progress import progress_bar


class Executor:
    """Base of the executors; `run` is the same for all of them."""

    def __init__(self, workers: int = 1, show_progress: bool = True):
        self.workers = max(1, workers)
        self.show_progress = show_progress

    def run(self, pipeline: Any, layout: RunLayout) -> list[list[dict[str, Any]]]:
        """Run every stage of `pipeline`; returns the stats of every unit, per stage."""
        units = pipeline.reader.units()
        all_stats = []
        with self.session(pipeline, layout):
            for stage in pipeline.stages:
                all_stats.append(self._run_stage(pipeline, stage, units, layout))
                if stage.closing is not None and not layout.decision_done(stage.index).exists():
                    stage.closing.ensure_setup()
                    self.decide(pipeline, stage, units, layout, all_stats[-1])
        return all_stats

    @contextmanager
    def session(self, pipeline: Any, layout: RunLayout) -> Iterator[None]:
        """Resources held for the whole run (a process pool, a cluster connection)."""
        yield

    def execute(self, pipeline: Any, stage: Any, todo: list[WorkUnit], layout: RunLayout) -> Iterable[dict[str, Any]]:
        """Run the units `todo` of `stage`; yields each unit's stats as it finishes, in any order."""
        raise NotImplementedError

    def shuffle(self, stage: Any, units: list[WorkUnit], layout: RunLayout, records: int) -> Shuffle:
        """The shuffle a decision over `units`' signatures (`records` rows) runs on."""
        raise NotImplementedError

    def decide(self, pipeline: Any, stage: Any, units: list[WorkUnit], layout: RunLayout,
               stats: list[dict[str, Any]]) -> None:
        """Compute and store the decision of the global step closing `stage`, marking it done last."""
        step = stage.closing
        if not step.shuffled:
            decide_on_driver(stage, units, layout)
            return
        side_dir = layout.side_dir(step.label)
        shutil.rmtree(layout.decision_dir(stage.index), ignore_errors=True)  # a half-done attempt
        shutil.rmtree(side_dir, ignore_errors=True)
        with self.shuffle(stage, units, layout, sum(unit["kept"] for unit in stats)) as shuffle:
            counters, report = step.decide_by_shuffle(shuffle)
        merge_side_parts(side_dir, step.side_schemas)
        write_json({"counters": counters, "report": report}, layout.decision_done(stage.index))

    def _run_stage(self, pipeline: Any, stage: Any, units: list[WorkUnit], layout: RunLayout) -> list[dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        todo = []
        for unit in units:
            path = layout.stats(stage.index, unit.key)
            if path.exists():
                done[unit.key] = read_json(path)
            else:
                todo.append(unit)
        label = f"stage {stage.index + 1}/{len(pipeline.stages)}"
        with progress_bar(total=len(units), initial=len(done), desc=label, unit="unit",
                          enabled=self.show_progress) as bar:
            started, records = time.perf_counter(), 0
            for stats in self.execute(pipeline, stage, todo, layout) if todo else ():
                done[stats["unit"]] = stats
                records += stats["read"]
                bar.update(1)
                bar.set_postfix(docs_per_s=f"{records / max(time.perf_counter() - started, 1e-9):,.0f}")
        return [done[unit.key] for unit in units]


def decide_on_driver(stage: Any, units: list[WorkUnit], layout: RunLayout) -> None:
    """A global step's second pass in this process, over every unit's signatures in unit order."""
    step = stage.closing
    signature_paths = [layout.signatures(stage.index, unit.key) for unit in units]
    decision = step.decide(read_table(p) for p in signature_paths if p.exists())
    for name, table in decision.side_tables.items():
        write_table(table, layout.side_dir(step.label) / f"{name}.arrow")
    for unit, path in zip(units, signature_paths):
        ids = read_table(path).column("id").to_pylist() if path.exists() else []
        dropped = [i for i in ids if i in decision.drop]
        if dropped:
            write_drops(layout.decision(stage.index, unit.key), dropped, [decision.drop[i] for i in dropped])
    write_json({"counters": dict(decision.counters), "report": decision.report}, layout.decision_done(stage.index))
