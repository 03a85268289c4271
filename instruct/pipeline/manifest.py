"""Summaries of a finished run: `manifest.json` for machines, `report.html` for people."""
from __future__ import annotations

import base64
import html
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from instruct.config import to_dict
from instruct.executor.layout import RunLayout
from instruct.executor.stats import LENGTH_BINS
from instruct.io.readers.base import expand_paths
from instruct.io.shards import read_json, shard_paths, write_json
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


def write_outputs(recipe: Any, recipe_data: dict[str, Any] | None, pipeline: Any,
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
        write_report(manifest, layout.report)
    return manifest


def _output_schema(output: Path) -> str | None:
    paths = shard_paths(output)
    if not paths:
        return None
    import pyarrow as pa

    with pa.memory_map(str(paths[0]), "r") as source:
        return schema_kind(pa.ipc.open_stream(source).schema)


def write_report(manifest: dict[str, Any], path: Path) -> None:
    """A self-contained HTML page: counts per step and reason, and length histograms."""
    from instruct.io.shards import atomic_path

    counts = manifest["counts"]
    rows = []
    for step in counts["steps"]:
        reasons = ", ".join(f"{html.escape(r)}: {n:,}" for r, n in sorted(step["dropped"].items(),
                                                                           key=lambda kv: -kv[1])) or "—"
        rows.append(f"<tr><td>{html.escape(step['step'])}</td><td>{step['in']:,}</td><td>{step['kept']:,}</td>"
                    f"<td>{step['in'] - step['kept']:,}</td><td>{reasons}</td></tr>")
    image = _histogram_png(manifest["length_bins"], counts["length_histogram"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>instruct build report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:last-child{{text-align:left}}</style>
</head><body><h1>instruct build report</h1>
<p>Read {counts['read']:,} records; wrote {counts['written']:,}; rejected {counts['rejected']:,}
 in {manifest['seconds']:.1f} s. Created {manifest['created']}.</p>
<h2>Per step</h2><table><tr><th>step</th><th>in</th><th>kept</th><th>dropped</th><th>reasons</th></tr>
{''.join(rows)}</table>
<h2>Text length (characters)</h2><img alt="length histogram" src="data:image/png;base64,{image}">
</body></html>"""
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _histogram_png(bins: list[float], histogram: dict[str, list[int]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5))
    edges = np.asarray(bins)
    for label, values in histogram.items():
        if any(values):
            axis.stairs(values, np.maximum(edges, 0.5), label=f"{label} ({sum(values):,})")
    axis.set_xscale("log")
    axis.set_xlabel("characters")
    axis.set_ylabel("records")
    axis.legend()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
