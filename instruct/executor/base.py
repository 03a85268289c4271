"""The one executor interface: the stage loop, resume by unit, and where a global decision runs.

`Executor.run` walks the stages; a subclass only says how to run a batch of units (`execute`)
and which `Shuffle` a global step's decision runs on (`shuffle`). Every global step decides on
it (`run_decision`), so no decision gathers the signatures in this process. Units that finished
in an earlier run (their stats file exists) are not redone, and a decision whose done marker
exists is not recomputed.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from instruct.executor.layout import RunLayout
from instruct.io.readers import WorkUnit
from instruct.io.shards import read_json, write_json
from instruct.pipeline.shuffle import Shuffle, merge_side_parts
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
        with self.shuffle(stage, units, layout, sum(unit["kept"] for unit in stats)) as shuffle:
            counters, report = run_decision(stage.closing, shuffle)
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


def run_decision(step: Any, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
    """A global step's pass 2 on `shuffle`: clears a half-done attempt's files, decides, joins the
    side-table parts; returns (counters, report)."""
    shutil.rmtree(shuffle.decision_dir, ignore_errors=True)
    shutil.rmtree(shuffle.side_dir, ignore_errors=True)
    counters, report = step.decide_by_shuffle(shuffle)
    merge_side_parts(shuffle.side_dir, step.side_schemas)
    return counters, report
