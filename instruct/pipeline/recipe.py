"""Build recipes: YAML `read` / `steps` / `write` sections onto typed dataclasses."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from instruct.config import ConfigError, from_dict, load_yaml, require_positive
from instruct.io.readers.base import ReadConfig
from instruct.overrides import apply


@dataclass
class WriteConfig:
    output: str = "out/build"
    shard_size: int = 50_000  # rows per output shard
    keep_rejected: bool = True  # write every dropped record to rejected/ with its step and reason
    report: bool = True  # write report.html

    def __post_init__(self) -> None:
        require_positive(self, "write", "shard_size")


@dataclass
class Recipe:
    read: ReadConfig = field(default_factory=ReadConfig)
    steps: list[Any] = field(default_factory=list)  # each: "name" or {name: {params}}
    write: WriteConfig = field(default_factory=WriteConfig)
    executor: Literal["local", "ray"] = "local"
    workers: int = 1
    strict: bool = False  # stop at the first bad input record instead of counting it as rejected

    def step_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """The steps as (name, params) pairs, validated for shape."""
        specs = []
        for position, item in enumerate(self.steps):
            if isinstance(item, str):
                specs.append((item, {}))
            elif isinstance(item, dict) and len(item) == 1:
                name, params = next(iter(item.items()))
                if params is not None and not isinstance(params, dict):
                    raise ConfigError(f"steps[{position}] ({name}): parameters must be a mapping, got {params!r}")
                specs.append((name, params or {}))
            else:
                raise ConfigError(f"steps[{position}]: expected a step name or {{name: {{params}}}}, got {item!r}")
        return specs


def load_recipe(path: str | Path | None, overrides: list[str] = (), data: dict | None = None,
                flags: dict[str, Any] | None = None) -> Recipe:
    """Load a recipe file (or use its already-loaded `data`), apply `key=value` overrides and CLI flags, type-check it."""
    data = copy.deepcopy(data) if data is not None else (load_yaml(path) if path else {})
    apply(data, overrides, flags)
    where = str(path) if path else "recipe"
    return from_dict(Recipe, data, where=where)
