"""What a re-run may reuse, and who may touch an output folder: lock, ownership, resume identity.

* One build at a time per folder: an exclusive `flock` on `DIR/.lock` for the whole run; a
  second build exits at once naming the pid that holds it.
* instruct deletes only inside folders it owns (those with `.work/recipe.json`); a folder it
  did not create that already has outputs of the names a build writes is refused, untouched.
* The run's identity (reader config, steps and parameters, write layout, the instruct
  version, and a fingerprint of every file a step parameter names: templates, classifiers,
  decontamination and few-shot sets) decides whether anything may be reused; a change starts
  the folder over. Inputs are compared unit by unit: a unit whose files changed is redone, a
  unit whose input is gone is forgotten (its files swept after the run), and either makes
  every global decision and later stage redo, since those saw the old rows.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from instruct.config import ConfigError, to_dict
from instruct.executor.layout import STATS_SUFFIX, RunLayout
from instruct.io.readers import WorkUnit
from instruct.io.shards import read_json
from instruct.provenance import fingerprint, package_versions


class OutputInUse(ConfigError):
    """Another build holds the output folder."""


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold an exclusive lock on `output` for the block; refuse at once if another process holds it."""
    output.mkdir(parents=True, exist_ok=True)
    fd = os.open(RunLayout(output).lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise OutputInUse(f"{output}: in use by another build (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def owned_entries(output: Path, names: list[str]) -> list[str]:
    """The entries of `output` a build may delete; refuses a folder instruct did not create that holds any."""
    marker = RunLayout(output).identity
    present = [name for name in names if (output / name).exists() or (output / name).is_symlink()]
    if present and not marker.is_file():
        raise ConfigError(f"{output}: not a folder instruct build created (no .work/recipe.json) but it has "
                          f"{', '.join(present)}; refusing to delete anything in it: choose another --output")
    return present


def run_identity(recipe: Any, steps: list[Any]) -> dict[str, Any]:
    """What decides the output: a different identity means nothing of an earlier run is reused."""
    files = sorted({path for step in steps for path in step.input_files()})
    identity = {"read": to_dict(recipe.read), "steps": recipe.step_specs(), "shard_size": recipe.write.shard_size,
                "keep_rejected": recipe.write.keep_rejected, "instruct": package_versions(("instruct",)).get("instruct"),
                "files": {path: file_fingerprint(path) for path in files}}
    return json.loads(json.dumps(identity, default=str))


def file_fingerprint(path: str) -> dict[str, Any]:
    entry = fingerprint(path)
    entry.pop("path", None)
    return entry


def unit_fingerprint(unit: WorkUnit) -> str:
    """A hash of what the unit's files hold (sizes, mtimes, first and last MiB; folders by stat only)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in unit.paths:
        if os.path.isdir(path):  # a folder skipped on purpose: its presence is what counts
            entry: Any = {"folder": True}
        else:
            entry = file_fingerprint(path)
        digest.update(json.dumps([path, entry], sort_keys=True, default=str).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def forget_changed_units(stage_count: int, units: list[WorkUnit], layout: RunLayout) -> None:
    """Drop the resume state of units whose input changed or is gone; then redo every later stage."""
    current = {unit.key: unit for unit in units}
    first = layout.stage_dir(0)
    recorded = {p.name[:-len(STATS_SUFFIX)] for p in first.glob(f"*{STATS_SUFFIX}")} if first.is_dir() else set()
    stale = recorded - set(current)
    changed = {key for key in recorded & set(current)
               if read_json(layout.stats(0, key)).get("fingerprint") != unit_fingerprint(current[key])}
    for key in stale | changed:
        for index in range(stage_count):
            layout.stats(index, key).unlink(missing_ok=True)
    if (stale or changed or set(current) - recorded) and stage_count > 1:
        for index in range(1, stage_count):
            for path in layout.stage_dir(index).glob(f"*{STATS_SUFFIX}"):
                path.unlink()
        for path in layout.work.glob("decision*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def sweep_unclaimed(output: Path, claimed: set[str], folders: tuple[str, ...] = ("shards", "rejected")) -> None:
    """Delete output files no current unit wrote (units of inputs that no longer exist)."""
    for name in folders:
        for path in (output / name).glob("*.arrow") if (output / name).is_dir() else []:
            if f"{name}/{path.name}" not in claimed:
                path.unlink()
