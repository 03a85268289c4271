"""The shipped recipes by name: list them and copy one out to edit (torchtune's `tune ls` / `tune cp`).

A name is the file's stem (`web`, `lora`) or its folder and stem (`pipelines/web`); stems are unique
across folders, which `shipped_recipes` checks, so the short form is never ambiguous.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from instruct.config import ConfigError
from instruct.io.shards import atomic_path
from instruct.resources import RECIPE_FOLDERS, resource_path


def shipped_recipes() -> dict[str, Path]:
    """`folder/stem` -> path of every shipped recipe, folders in RECIPE_FOLDERS order."""
    found = {f"{folder}/{path.stem}": path for folder in RECIPE_FOLDERS
             for path in sorted(resource_path(folder).glob("*.yaml"))}
    stems = [name.partition("/")[2] for name in found]
    assert len(stems) == len(set(stems)), f"shipped recipe names clash: {sorted(stems)}"
    return found


def find_recipe(name: str) -> Path:
    """The shipped recipe called `name` (`web`, `web.yaml` or `pipelines/web`)."""
    key = name.removesuffix(".yaml")
    recipes = shipped_recipes()
    for full, path in recipes.items():
        if key in (full, full.partition("/")[2]):
            return path
    raise ConfigError(f"{name}: no shipped recipe of that name; `instruct recipes ls` lists "
                      f"{', '.join(full.partition('/')[2] for full in recipes)}")


def recipe_file(path_or_name: str) -> Path:
    """`path_or_name` if it is a file, else the shipped recipe of that name (so shipped recipes can name each other)."""
    path = Path(path_or_name)
    return path if path.is_file() else find_recipe(path_or_name)


def description(path: Path) -> str:
    """The first comment line that is not a command line: what the recipe is for."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("# ").strip()
        if not line.startswith("#"):
            break
        if text and not text.startswith("instruct "):
            return text
    return ""


def copy_recipe(name: str, destination: str | Path, force: bool = False) -> Path:
    """Copy shipped recipe `name` to `destination` (a file, or a folder to put `stem.yaml` in)."""
    source = find_recipe(name)
    target = Path(destination)
    if target.is_dir():
        target = target / source.name
    if target.exists() and not force:
        raise ConfigError(f"{target}: already exists (pass --force to overwrite)")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
