"""Run units in this process (one worker) or in a forkserver process pool; decisions run in this
process on a shuffle spilled to the run folder, so their memory is bounded by a partition."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Iterable, Iterator

from instruct.executor.base import Executor
from instruct.executor.layout import RunLayout
from instruct.executor.local_shuffle import LocalShuffle
from instruct.io.readers import WorkUnit
from instruct.pipeline.runner import Pipeline, Stage, run_unit

_WORKER_PIPELINE: Pipeline | None = None


def _init_worker(pipeline: Pipeline) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = pipeline


def _run_unit_in_worker(stage_index: int, unit: WorkUnit, layout: RunLayout) -> dict[str, Any]:
    return run_unit(_WORKER_PIPELINE, stage_index, unit, layout)


class LocalExecutor(Executor):
    """Units over a process pool (or in-process for one worker); steps set up once per process."""

    pool: ProcessPoolExecutor | None = None

    @contextmanager
    def session(self, pipeline: Pipeline, layout: RunLayout) -> Iterator[None]:
        if self.workers == 1:
            yield
            return
        self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("forkserver"),
                                        initializer=_init_worker, initargs=(pipeline,))
        try:
            yield
        finally:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def execute(self, pipeline: Pipeline, stage: Stage, todo: list[WorkUnit],
                layout: RunLayout) -> Iterable[dict[str, Any]]:
        if self.pool is None:
            return (run_unit(pipeline, stage.index, unit, layout) for unit in todo)
        futures = [self.pool.submit(_run_unit_in_worker, stage.index, unit, layout) for unit in todo]
        return (future.result() for future in futures)

    def shuffle(self, stage: Stage, units: list[WorkUnit], layout: RunLayout, records: int) -> LocalShuffle:
        return LocalShuffle(layout, stage.index, units, layout.side_dir(stage.closing.label), records)
