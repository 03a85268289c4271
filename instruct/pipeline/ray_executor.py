"""Run a pipeline on Ray Data: the same steps and the same per-unit logic as the local executor.

Each stage is a Ray Data job over the stage's pending work units: `map_batches` (Arrow batch
format) hands units to a pool of actors, each of which reads its unit, applies the steps to
its Arrow batches and writes its shards, exactly as `runner.run_unit` does in the local pool,
so outputs, resume state and counts are identical. A step's `setup()` runs once per actor.

Global steps run their second pass distributed (`ray_global`): shuffles by key and connected
components, so the driver only ever holds per-unit stats and scalar counts, never the
signatures, the edges or the drop set.

`RAY_ADDRESS` (or an already initialised Ray) selects an existing cluster; otherwise a local
one starts with `workers` CPUs. Workers on a remote cluster need `instruct` installed and the
input and output folders on a shared filesystem.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from instruct.config import ConfigError
from instruct.errors import USER_ERRORS
from instruct.io.readers import WorkUnit
from instruct.pipeline.runner import Pipeline, Stage, decide_stage, run_stage, run_unit

log = logging.getLogger(__name__)


def import_ray() -> Any:
    """Ray is an optional extra; say how to get it instead of a bare ImportError."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("the ray executor needs Ray Data: pip install 'instruct[ray]' "
                          "(or pip install 'ray[data]')") from None
    return ray


def connect(workers: int) -> Any:
    """Join the cluster at RAY_ADDRESS (or the one already joined), else start a local one."""
    ray = import_ray()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # "local": a fresh cluster even when `ray start` left one running on this machine
        options: dict[str, Any] = {"address": address} if address else {"address": "local",
                                                                           "num_cpus": max(1, workers)}
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False, **options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the executor shows its own per-stage bar
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    return ray


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class UnitWorker:
    """A Ray actor that runs whole units of one stage (steps set up once per actor)."""

    def __init__(self, pipeline: Pipeline, stage_index: int, workdir: str, output: str) -> None:
        self.pipeline, self.stage_index = pipeline, stage_index
        self.workdir, self.output = Path(workdir), Path(output)

    def __call__(self, batch: pa.Table) -> pa.Table:
        results = []
        for key, paths in zip(batch.column("key").to_pylist(), batch.column("paths").to_pylist()):
            try:
                results.append(run_unit(self.pipeline, self.stage_index, WorkUnit(key, tuple(paths)),
                                        self.workdir, self.output))
            except USER_ERRORS as error:  # returned as data: Ray would wrap it beyond recognition
                results.append({"error": type(error).__name__, "message": str(error)})
        return pa.table({"stats": pa.array([json.dumps(r) for r in results], pa.string())})


class RayExecutor:
    """Runs the stages of a pipeline on a Ray cluster (local or at RAY_ADDRESS)."""

    def __init__(self, workers: int = 1, show_progress: bool = True):
        self.workers = max(1, workers)
        self.show_progress = show_progress

    def run(self, pipeline: Pipeline, output: Path) -> list[list[dict[str, Any]]]:
        """Run every stage; returns the stats of every unit, per stage (as LocalExecutor.run)."""
        from instruct.pipeline.ray_global import decide_distributed, supports

        ray = connect(self.workers)
        cpus = cluster_cpus(ray)
        workdir = output / ".work"
        units = pipeline.reader.units()
        all_stats = []
        for stage in pipeline.stages:
            def execute(todo: list[WorkUnit], stage: Stage = stage) -> Iterator[dict[str, Any]]:
                return self._execute(ray, pipeline, stage, todo, workdir, output, cpus)

            all_stats.append(run_stage(pipeline, stage, units, workdir, execute, self.show_progress))
            if stage.closing is None:
                continue
            if supports(stage.closing):
                rows = sum(unit["kept"] for unit in all_stats[-1])
                decide_distributed(stage.closing, stage.index, units, workdir, output, cpus, rows)
            else:
                log.warning("%s has no distributed second pass; deciding on the driver", stage.closing.label)
                decide_stage(pipeline, stage, units, workdir, output)
        return all_stats

    @staticmethod
    def _execute(ray: Any, pipeline: Pipeline, stage: Stage, todo: list[WorkUnit], workdir: Path, output: Path,
                 cpus: int) -> Iterator[dict[str, Any]]:
        if not todo:
            return
        items = [{"key": unit.key, "paths": list(unit.paths)} for unit in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            UnitWorker, batch_format="pyarrow", batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(cpus, len(todo))),
            fn_constructor_kwargs={"pipeline": pipeline, "stage_index": stage.index,
                                   "workdir": str(workdir), "output": str(output)})
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for text in batch.column("stats").to_pylist():
                stats = json.loads(text)
                if "error" in stats:  # a bad input in strict mode, a bad config: the same one-line error
                    raise next(kind for kind in USER_ERRORS if kind.__name__ == stats["error"])(stats["message"])
                yield stats
