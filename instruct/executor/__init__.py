"""Executors: schedule a pipeline's units and global decisions on some compute; they know no step.

Above `instruct.pipeline` (steps, recipes, the per-unit processing) as datatrove keeps
`executor/` above `pipeline/`: a step never imports from here (only `GlobalStep.apply`, the
single-table convenience, borrows the in-process shuffle, in a function-local import). `build` picks one by the
recipe's `executor` name from EXECUTORS, so the heavy Ray module is imported only when used.
"""
from __future__ import annotations

import importlib
from typing import Any

# recipe `executor:` name -> "module:class" of an `Executor`
EXECUTORS = {"local": "instruct.executor.local:LocalExecutor", "ray": "instruct.executor.ray_executor:RayExecutor"}


def make_executor(name: str, workers: int, show_progress: bool) -> Any:
    """The executor called `name` (the recipe validated the name)."""
    module_name, _, class_name = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(workers, show_progress)
