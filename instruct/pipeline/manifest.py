"""Summaries of a finished run: `manifest.json` for machines, `report.html` for people."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from instruct.config import to_dict
from instruct.executor.layout import RunLayout
from instruct.executor.stats import LENGTH_BINS
from instruct.io.readers.base import expand_paths
from instruct.io.shards import read_json, read_schema, shard_paths, write_json
from instruct.provenance import fingerprint, package_versions  # noqa: F401  (also imported from here)
from instruct.schema import schema_kind


class AccountingError(RuntimeError):
    """read != written + rejected: a bug in the runner or a step, never a user error."""


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


def write_run_summary(recipe: Any, recipe_data: dict[str, Any] | None, pipeline: Any,
                  stage_stats: list[list[dict[str, Any]]], layout: RunLayout, seconds: float) -> dict[str, Any]:
    output = layout.output
    counts = summarize([step.label for step in pipeline.steps], stage_stats)
    global_reports = {}
    for stage in pipeline.stages:
        decision_file = layout.decision_done(stage.index)
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
    write_json(manifest, layout.manifest)
    if recipe.write.report:
        from instruct.report import write_report

        write_report(manifest, layout.report)
    return manifest


def _output_schema(output: Path) -> str | None:
    paths = shard_paths(output)
    if not paths:
        return None
    return schema_kind(read_schema(paths[0]))
