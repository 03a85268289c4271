"""The `instruct samples` inputs, generated once per test process (a few seconds) and shared.

A plain cached function rather than a fixture, so that every test module reuses one copy.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from instruct.io.shards import read_table, shard_paths
from instruct.samples import generate


@functools.cache
def sample_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="instruct-samples-"))
    atexit.register(shutil.rmtree, root, True)
    generate(root / "generated")
    return root / "generated"


REPO = Path(__file__).resolve().parent.parent


def build_recipes() -> list[Path]:
    """Every shipped `instruct build` recipe (pipelines/*.yaml with a `read` section)."""
    from instruct.config import load_yaml

    return [p for p in sorted((REPO / "pipelines").glob("*.yaml")) if "read" in load_yaml(p)]


def recipe_on_samples(path: Path, output: Path, overrides: list[str] = ()) -> tuple:
    """(Recipe, its data) of a shipped recipe, on the generated samples, writing to `output`.

    Paths under data/generated/ (read paths, few-shot files, eval sets) point at the samples; other
    relative read paths at the repository.
    """
    from instruct.config import load_yaml
    from instruct.pipeline.recipe import load_recipe

    data = _on_samples(load_yaml(path))
    paths = data["read"]["paths"]
    data["read"]["paths"] = [p if Path(p).is_absolute() else str(REPO / p)
                             for p in ([paths] if isinstance(paths, str) else paths)]
    data.setdefault("write", {})["output"] = str(output)
    return load_recipe(path, list(overrides), data=data), data


def _on_samples(value):
    """`value` with every string path under data/generated/ pointed at the generated samples."""
    if isinstance(value, dict):
        return {key: _on_samples(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_on_samples(item) for item in value]
    if isinstance(value, str) and value.startswith("data/generated"):
        return value.replace("data/generated", str(sample_dir()), 1)
    return value


def rejected_counts(output: Path) -> Counter:
    """(step, reason) -> n over every file in DIR/rejected/."""
    counts: Counter = Counter()
    for path in sorted((output / "rejected").glob("*.arrow")):
        table = read_table(path)
        steps = table.column("step").to_pylist() if "step" in table.column_names else ["read"] * table.num_rows
        assert None not in table.column("reason").to_pylist()
        counts.update(zip(steps, table.column("reason").to_pylist()))
    return counts


def manifest_drops(manifest: dict) -> Counter:
    return Counter({(step["step"], reason): n for step in manifest["counts"]["steps"]
                    for reason, n in step["dropped"].items()})


def assert_accounted(output: Path, manifest: dict) -> None:
    """read (+ rows steps created) == written + rejected, and rejected/ holds every dropped record."""
    counts = manifest["counts"]
    assert counts["read"] + counts.get("created", 0) == counts["written"] + counts["rejected"]
    assert sum(read_table(p).num_rows for p in shard_paths(output)) == counts["written"]
    assert rejected_counts(output) == manifest_drops(manifest)
    assert sum(manifest_drops(manifest).values()) == counts["rejected"]
