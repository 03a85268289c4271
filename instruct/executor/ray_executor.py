"""Run a pipeline on Ray Data: the same steps and the same per-unit logic as the local executor.

Each stage is a Ray Data job over the stage's pending work units: `map_batches` (Arrow batch
format) hands units to a pool of actors, each of which reads its unit, applies the steps to
its Arrow batches and writes its shards, exactly as `runner.run_unit` does in the local pool,
so outputs, resume state and counts are identical. A step's `setup()` runs once per actor.

Global steps run their second pass on a `RayShuffle` (`ray_shuffle`): shuffles by key as Ray
tasks, so the driver only ever holds per-unit stats and scalar counts, never the signatures,
the edges or the drop set.

`RAY_ADDRESS` (or an already initialised Ray) selects an existing cluster; otherwise a local
one starts with `workers` CPUs. Workers on a remote cluster need `instruct` installed and the
input and output folders on a shared filesystem.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

import pyarrow as pa

from instruct.errors import CROSSING_ERRORS, error_from_state, error_state
from instruct.executor.base import Executor
from instruct.executor.layout import RunLayout
from instruct.executor.ray_cluster import cluster_cpus, connect
from instruct.executor.ray_shuffle import RayShuffle
from instruct.io.readers import WorkUnit
from instruct.pipeline.runner import Pipeline, Stage, run_unit


class UnitWorker:
    """A Ray actor that runs whole units of one stage (steps set up once per actor)."""

    def __init__(self, pipeline: Pipeline, stage_index: int, layout: RunLayout) -> None:
        self.pipeline, self.stage_index, self.layout = pipeline, stage_index, layout

    def __call__(self, batch: pa.Table) -> pa.Table:
        stats, errors = [], []
        for key, paths in zip(batch.column("key").to_pylist(), batch.column("paths").to_pylist()):
            try:
                stats.append(json.dumps(run_unit(self.pipeline, self.stage_index, WorkUnit(key, tuple(paths)),
                                                 self.layout)))
                errors.append(None)
            except CROSSING_ERRORS as error:  # handed back as data: Ray Data keeps only an exception's text
                stats.append(None)
                errors.append(json.dumps(error_state(error)))
        return pa.table({"stats": pa.array(stats, pa.string()), "error": pa.array(errors, pa.string())})


class RayExecutor(Executor):
    """Runs the stages of a pipeline on a Ray cluster (local or at RAY_ADDRESS)."""

    ray: Any = None

    @contextmanager
    def session(self, pipeline: Pipeline, layout: RunLayout) -> Iterator[None]:
        self.ray = connect(self.workers)
        self.cpus = cluster_cpus(self.ray)
        yield

    def shuffle(self, stage: Stage, units: list[WorkUnit], layout: RunLayout, records: int) -> RayShuffle:
        return RayShuffle(self.ray, layout, stage.index, units, layout.side_dir(stage.closing.label), records,
                          self.cpus)

    def execute(self, pipeline: Pipeline, stage: Stage, todo: list[WorkUnit],
                layout: RunLayout) -> Iterator[dict[str, Any]]:
        ray = self.ray
        items = [{"key": unit.key, "paths": list(unit.paths)} for unit in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            UnitWorker, batch_format="pyarrow", batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(self.cpus, len(todo))),
            fn_constructor_kwargs={"pipeline": pipeline, "stage_index": stage.index, "layout": layout})
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for text, error in zip(batch.column("stats").to_pylist(), batch.column("error").to_pylist()):
                if error is not None:  # the exception the unit raised, as the local executor raises it
                    raise error_from_state(json.loads(error))
                yield json.loads(text)
