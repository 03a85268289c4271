"""Find steps by the name a recipe uses (`gopher_quality`, `minhash_dedup`, ...).

Steps register themselves by subclassing `Step` with a `name`; the registry imports the step
packages below on first lookup. A recipe may also name any importable class as
`package.module:ClassName`, so users add steps without touching this package.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Any

from instruct.config import ConfigError
from instruct.pipeline.step import Step

STEP_PACKAGES = ("instruct.filters", "instruct.dedup", "instruct.transforms", "instruct.pii", "instruct.templates",
                 "instruct.quality")


@lru_cache(maxsize=1)
def available_steps() -> dict[str, type[Step]]:
    for package_name in STEP_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ModuleNotFoundError as error:
            if error.name == package_name:
                continue  # that part of the product is not installed in this tree
            raise
        for module in pkgutil.walk_packages(getattr(package, "__path__", []), package_name + "."):
            importlib.import_module(module.name)
    steps: dict[str, type[Step]] = {}
    pending = list(Step.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__dict__.get("name"):
            steps[cls.name] = cls
    return steps


def step_class(name: str) -> type[Step]:
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"step {name!r}: cannot import ({error})") from None
    steps = available_steps()
    if name not in steps:
        raise ConfigError(f"unknown step {name!r}; available: {', '.join(sorted(steps))}")
    return steps[name]


def make_step(name: str, params: dict[str, Any] | None) -> Step:
    return step_class(name)(**(params or {}))
