"""Run units in this process (one worker) or in a forkserver process pool; decisions run in this
process on a shuffle spilled to the run folder, so their memory is bounded by a partition."""
from __future__ import annotations

import os
import sys
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


def _init_worker(pipeline: Pipeline, threads: int) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = pipeline
    share_cores(threads)


def worker_threads(workers: int) -> int:
    """Intra-op threads per worker process: the cores this process may use, shared out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def share_cores(threads: int) -> None:
    """Cap a worker's OpenMP and torch threads (the models of `pii`'s NAME judge, perplexity and
    classifier steps), so that N workers do not each start a thread per core; an OMP_NUM_THREADS the
    user set is kept."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch and numpy's BLAS when first imported
    if "torch" in sys.modules:  # imported while the pipeline was unpickled
        sys.modules["torch"].set_num_threads(threads)


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
        self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("forkserver"), initializer=_init_worker,
                                        initargs=(pipeline, worker_threads(self.workers)))
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
