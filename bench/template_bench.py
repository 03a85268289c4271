"""Examples/s rendering simple templates over 100k rows on one core.

    python bench/template_bench.py [--rows 100000]      (pin one core: taskset -c 0 python ...)

Rows are real text (stdlib docstrings) with a 0/1 label. Measured in the same run:
  * baseline: promptsource's Template.apply algorithm (jinja2 Environment, the template
    compiled again on every call with env.from_string, answer choices rendered per row,
    default 2048-character truncation), which is how promptsource renders P3;
  * instruct Template.apply: compiled once, sandboxed, StrictUndefined, fixed choices cached;
  * instruct template step: Arrow table in, EXAMPLE table out (what `instruct build` runs).
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pyarrow as pa
from jinja2 import BaseLoader, Environment

from instruct.corpus import stdlib_docstrings
from instruct.templates import load_templates
from instruct.templates.step import TemplateStep

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "sentiment.yaml"
PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"


def make_rows(count: int) -> list[dict]:
    texts = [doc for _, doc in stdlib_docstrings(limit=2000)]
    return [{"id": str(i), "text": text[:600], "label": i % 2}
            for i, text in zip(range(count), itertools.cycle(texts))]


def promptsource_apply(env: Environment, jinja: str, choices: str, row: dict) -> list[str]:
    """promptsource.templates.Template.apply (truncate=True), re-implemented for the comparison."""
    protected = {k: v.replace("|||", PROTECTOR) if isinstance(v, str) else v for k, v in row.items()}
    protected["answer_choices"] = [c.strip().replace(PROTECTOR, "|||") for c in
                                   env.from_string(choices).render(**protected).split("|||")]
    source = jinja.replace("}}", " | string | truncate(2048) }}")
    rendered = env.from_string(source).render(**protected)
    return [part.replace(PROTECTOR, "|||").strip() for part in rendered.split("|||")]


def timed(label: str, count: int, run) -> tuple[str, float, float]:
    """(label, examples per wall second, examples per CPU second); CPU time is fairer on a shared machine."""
    started, cpu_started = time.perf_counter(), time.process_time()
    produced = run()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    assert produced == count, (label, produced, count)
    return label, count / seconds, count / cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000, help="the baseline is slow; fewer rows")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    templates = [t for t in load_templates(TEMPLATES) if not t.metadata.inverted]
    env = Environment(loader=BaseLoader)
    baseline_rows = rows[:args.baseline_rows]

    def baseline() -> int:
        return sum(len(promptsource_apply(env, t.jinja, t.answer_choices_jinja, row)) == 2
                   for row, t in zip(baseline_rows, itertools.cycle(templates)))

    def ours() -> int:
        return sum(t.apply(row) is not None for row, t in zip(rows, itertools.cycle(templates)))

    table = pa.Table.from_pylist(rows)
    step = TemplateStep(templates=[str(TEMPLATES)], k=1)
    step.ensure_setup()

    def step_run() -> int:
        return sum(step.apply(table.slice(start, 5000)).table.num_rows for start in range(0, table.num_rows, 5000))

    results = [timed(f"promptsource algorithm ({len(baseline_rows):,} rows)", len(baseline_rows), baseline),
               timed(f"instruct Template.apply ({len(rows):,} rows)", len(rows), ours),
               timed(f"instruct template step -> EXAMPLE table ({len(rows):,} rows)", len(rows), step_run)]
    base = results[0][2]
    print(f"{'method':58} {'examples/s':>11} {'per CPU-s':>11} {'vs baseline':>12}")
    for label, rate, cpu_rate in results:
        print(f"{label:58} {rate:11,.0f} {cpu_rate:11,.0f} {cpu_rate / base:11.1f}x")


if __name__ == "__main__":
    main()
