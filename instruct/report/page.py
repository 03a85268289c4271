"""`report.html`: per-step counts (steps that add rows counted right), kept/dropped by reason as a chart,
sample rejected records per reason, dedup clusters, PII per type, length and language before/after.

Self-contained (inline SVG and CSS, one small script that sorts tables), every value escaped; the
manifest's counts are embedded as JSON so a tool or a test can check the page against them.
"""
from __future__ import annotations

import html
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from instruct.io.shards import atomic_path
from instruct.report import data, svg

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4;cursor:pointer}td.l,th.l{text-align:left}pre{white-space:pre-wrap;background:#f8f8f8;
padding:6px;margin:4px 0;max-height:12em;overflow:auto}.legend{font-size:12px;margin:2px 0 1em}
.key{margin-right:1em}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}"""

SORT_SCRIPT = """document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var value = function (row) { var t = row.cells[column].dataset.value || row.cells[column].textContent;
                                 var n = Number(t.replace(/,/g, "")); return isNaN(n) ? t : n; };
    var down = th.dataset.down !== "1"; th.dataset.down = down ? "1" : "0";
    rows.sort(function (a, b) { var x = value(a), y = value(b); return (x > y ? 1 : x < y ? -1 : 0) * (down ? -1 : 1); });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});"""


def write_report(manifest: dict[str, Any], path: Path) -> None:
    """Write the report of the build whose folder holds `path` (it reads rejected/ and side tables there)."""
    output = Path(path).parent
    counts = manifest["counts"]
    sections = [_summary(manifest, output), _steps(counts), _reasons_chart(counts), _samples(output),
                _dedup(manifest, output), _pii(counts), _lengths(manifest), _languages(output)]
    embedded = json.dumps({"read": counts["read"], "written": counts["written"], "rejected": counts["rejected"],
                           "created": counts.get("created", 0), "steps": counts["steps"]}).replace("</", "<\\/")
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>instruct build report</title>'
            f'<style>{STYLE}</style></head><body><h1>instruct build report</h1>{"".join(s for s in sections if s)}'
            f'<script type="application/json" id="manifest-counts">{embedded}</script>'
            f'<script>{SORT_SCRIPT}</script></body></html>')
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _summary(manifest: dict[str, Any], output: Path) -> str:
    counts = manifest["counts"]
    shards = manifest.get("shards", [])
    links = ", ".join(f'<a href="shards/{html.escape(s)}">{html.escape(s)}</a>' for s in shards[:20])
    more = f" and {len(shards) - 20:,} more" if len(shards) > 20 else ""
    rejected = '<a href="rejected/">rejected/</a>' if (output / "rejected").is_dir() else "no rejected/ folder"
    return (f'<p>Read <b id="count-read">{counts["read"]:,}</b> records, steps created '
            f'<b id="count-created">{counts.get("created", 0):,}</b>; wrote <b id="count-written">'
            f'{counts["written"]:,}</b>, rejected <b id="count-rejected">{counts["rejected"]:,}</b> in '
            f'{manifest["seconds"]:.1f} s ({html.escape(str(manifest.get("schema")))} rows, '
            f'{html.escape(manifest["created"])}).</p><p><a href="manifest.json">manifest.json</a> · {rejected} · '
            f'shards: {links or "none"}{more}</p>')


def _steps(counts: dict[str, Any]) -> str:
    rows = []
    for index, step in enumerate(counts["steps"]):
        dropped = sum(step["dropped"].values())
        reasons = ", ".join(f"{html.escape(r)}: {n:,}" for r, n in sorted(step["dropped"].items(),
                                                                           key=lambda kv: -kv[1])) or "—"
        cells = [("in", step["in"]), ("added", step.get("added", 0)), ("kept", step["kept"]), ("dropped", dropped)]
        rows.append(f'<tr><td class="l">{html.escape(step["step"])}</td>'
                    + "".join(f'<td id="step-{index}-{key}">{value:,}</td>' for key, value in cells)
                    + f'<td class="l">{reasons}</td></tr>')
    return ('<h2>Per step</h2><table class="sortable"><thead><tr><th class="l">step</th><th>in</th><th>added</th>'
            '<th>kept</th><th>dropped</th><th class="l">reasons</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _reasons_chart(counts: dict[str, Any]) -> str:
    rows = [(step["step"], {"kept": step["kept"], **dict(sorted(step["dropped"].items(), key=lambda kv: -kv[1]))})
            for step in counts["steps"]]
    return "<h2>Kept and dropped per step and reason</h2>" + svg.stacked_bars(rows, "kept and dropped per step")


def _samples(output: Path) -> str:
    samples = data.rejected_samples(output)
    if not samples:
        return ""
    parts = ["<h2>Sample rejected records</h2>"]
    for (step, reason), records in sorted(samples.items()):
        items = "".join(f'<div>{html.escape(r["where"])}<pre>{html.escape(r["text"])}</pre></div>' for r in records)
        parts.append(f"<details><summary>{html.escape(step)} / {html.escape(reason)} ({len(records)} shown)</summary>"
                     f"{items}</details>")
    return "".join(parts)


def _dedup(manifest: dict[str, Any], output: Path) -> str:
    parts = []
    for label in manifest.get("global_steps", {}):
        paths = sorted((output / label).glob("clusters*.arrow"))
        if not paths:
            continue
        found = data.clusters(paths)
        if not found["sizes"]:
            parts.append(f"<h3>{html.escape(label)}</h3><p>No duplicate clusters.</p>")
            continue
        sizes = list(found["sizes"])
        chart = svg.columns([str(s) for s in sizes], {"clusters": [found["sizes"][s] for s in sizes]},
                            f"{label} cluster sizes")
        rows = "".join(f'<tr><td class="l">{html.escape(c["cluster"])}</td><td>{c["size"]:,}</td>'
                       f'<td class="l">{html.escape(", ".join(c["members"]))}</td></tr>' for c in found["largest"])
        parts.append(f"<h3>{html.escape(label)}: cluster sizes (records per cluster)</h3>{chart}"
                     '<table class="sortable"><thead><tr><th class="l">kept record</th><th>size</th>'
                     f'<th class="l">members (first 5)</th></tr></thead><tbody>{rows}</tbody></table>')
    return "<h2>Deduplication</h2>" + "".join(parts) if parts else ""


def _pii(counts: dict[str, Any]) -> str:
    found: Counter = Counter()
    for step in counts["steps"]:
        if step["step"].split("#")[0] == "pii":
            found.update(step.get("counters", {}))
    if not found:
        return ""
    rows = "".join(f'<tr><td class="l">{html.escape(kind)}</td><td id="pii-{html.escape(kind)}">{n:,}</td></tr>'
                   for kind, n in found.most_common())
    return ('<h2>PII scrubbed, per type</h2><table class="sortable"><thead><tr><th class="l">type</th><th>found</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _lengths(manifest: dict[str, Any]) -> str:
    histogram = manifest["counts"]["length_histogram"]
    edges = manifest["length_bins"]
    decades: dict[int, list[int]] = {}
    for i, left in enumerate(edges[:-1]):
        decade = math.floor(math.log10(left)) if left >= 1 else 0
        bucket = decades.setdefault(decade, [0, 0])
        bucket[0] += histogram["kept"][i] + histogram["dropped"][i]
        bucket[1] += histogram["kept"][i]
    used = [d for d, (before, _) in sorted(decades.items()) if before]
    if not used:
        return ""
    keys = list(range(used[0], used[-1] + 1))
    labels = [f"{10 ** d:,}–{10 ** (d + 1):,}" for d in keys]
    return ("<h2>Length (characters), before and after</h2>"
            + svg.columns(labels, {"before": [decades.get(d, [0, 0])[0] for d in keys],
                                   "after": [decades.get(d, [0, 0])[1] for d in keys]}, "length before and after"))


def _languages(output: Path) -> str:
    found = data.languages(output)
    if not found:
        return ""
    names = [name for name, _ in found["before"].most_common(12)]
    return ("<h2>Languages (meta.language), before and after</h2>"
            + svg.columns(names, {side: [found[side][n] for n in names] for side in ("before", "after")},
                          "languages before and after"))
