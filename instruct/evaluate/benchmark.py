"""`instruct eval --benchmark lm-eval:TASK[,TASK]`: standard benchmarks through EleutherAI's
lm-evaluation-harness (the optional `lm-eval` extra), base vs adapter side by side.

Per-item scores come back from the harness (`log_samples`), so the table carries the same
bootstrap intervals, and the adapter the same paired difference, as `instruct eval --data`.
TASK is a task the harness knows, a local task YAML (or a folder of them), or a task shipped
here and built offline at run time: `unicode_category` (character name -> Unicode category).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from instruct.evaluate.metrics import bootstrap
from instruct.io.shards import write_json

PREFIX = "lm-eval:"
LOCAL_TASK_ROWS = 40  # per category: 200 test items, a few minutes for a 135M model on 2 CPU cores


def parse_benchmark(spec: str) -> list[str]:
    if not spec.startswith(PREFIX) or not spec[len(PREFIX):].strip(","):
        raise ValueError(f"--benchmark {spec!r}: expected {PREFIX}TASK[,TASK] (e.g. {PREFIX}unicode_category)")
    return [task for task in spec[len(PREFIX):].split(",") if task]


def unicode_category_task(folder: Path) -> str:
    """Write the shipped task (YAML + its data, derived from `unicodedata`) into `folder`; returns its name."""
    from instruct.labeled_samples import LABELS, write_unicode_category

    paths = write_unicode_category(folder / "unicode_category", splits={"test": LOCAL_TASK_ROWS})
    choices = json.dumps(LABELS)
    (folder / "unicode_category.yaml").write_text(
        "task: unicode_category\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(paths['test']))}}}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: \"Which Unicode category is the character named {{name}}? Answer with one of: "
        + ", ".join(LABELS) + ".\\nAnswer:\"\n"
        f"doc_to_choice: {choices}\n"
        "doc_to_target: label\n"
        "target_delimiter: \" \"\n"
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n", encoding="utf-8")
    return "unicode_category"


LOCAL_TASKS = {"unicode_category": unicode_category_task}


def _resolve_tasks(tasks: list[str], folder: Path) -> tuple[list[str], list[str]]:
    """(task names, include paths): shipped tasks are written into `folder`, YAML paths included."""
    import yaml

    names, include = [], [str(folder)]
    for task in tasks:
        path = Path(task)
        if task in LOCAL_TASKS:
            names.append(LOCAL_TASKS[task](folder))
        elif path.suffix in (".yaml", ".yml") and path.is_file():
            include.append(str(path.parent))
            names.append(yaml.safe_load(path.read_text(encoding="utf-8"))["task"])
        else:
            names.append(task)
    return names, include


def _harness() -> Any:
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ValueError("--benchmark needs EleutherAI's harness: pip install 'instruct[lm-eval]'") from None
    return lm_eval, HFLM


def _per_item(results: dict[str, Any], task: str) -> dict[str, dict[int, float]]:
    """metric -> {doc_id: score} from the harness's logged samples."""
    scores: dict[str, dict[int, float]] = {}
    for sample in results["samples"][task]:
        for metric in sample.get("metrics", []):
            if isinstance(sample.get(metric), (int, float, bool)):
                scores.setdefault(metric, {})[sample["doc_id"]] = float(sample[metric])
    return scores


def run_benchmark(spec: str, output: str | Path, model: str | None = None, adapter: str | None = None,
                  limit: int | None = None, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    """Score the base model (and the adapter) on each task; write DIR/benchmark.json and return its report."""
    tasks = parse_benchmark(spec)
    lm_eval, hflm = _harness()
    from lm_eval.tasks import TaskManager

    from instruct.tune import load_model

    started = time.perf_counter()
    variants = {"base": (model, None)} | ({"adapter": (model, adapter)} if adapter else {})
    per_item: dict[str, dict[str, dict[str, dict[int, float]]]] = {}  # variant -> task -> metric -> item
    with tempfile.TemporaryDirectory(prefix="instruct-lm-eval-") as folder:
        names, include = _resolve_tasks(tasks, Path(folder))
        # indexing the harness's own thousands of task files takes a while: only when a task needs them
        manager = TaskManager(include_path=include, include_defaults=any(t not in LOCAL_TASKS and not t.endswith(
            (".yaml", ".yml")) for t in tasks))
        for variant, (base, tuned) in variants.items():
            loaded, tokenizer = load_model(base, tuned)
            lm = hflm(pretrained=loaded, tokenizer=tokenizer, batch_size=batch_size, device=str(loaded.device))
            results = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, limit=limit,
                                              log_samples=True, bootstrap_iters=0, random_seed=seed,
                                              apply_chat_template=bool(tokenizer.chat_template))
            per_item[variant] = {task: _per_item(results, task) for task in names}
    return _report(per_item, names, spec, model, adapter, seed, started, Path(output))


def _report(per_item: dict, names: list[str], spec: str, model: str | None, adapter: str | None, seed: int,
            started: float, output: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"config": {"benchmark": spec, "model": model, "adapter": adapter, "seed": seed},
                              "tasks": {}, "seconds": 0.0}
    for task in names:
        base = per_item["base"][task]
        entry: dict[str, Any] = {"examples": len(next(iter(base.values()), {})),
                                 "models": {variant: {metric: bootstrap(np.array(list(items.values())), seed=seed)
                                                      .as_dict() for metric, items in scores[task].items()}
                                            for variant, scores in per_item.items()}}
        if "adapter" in per_item:
            tuned = per_item["adapter"][task]
            entry["delta"] = {metric: bootstrap(np.array([tuned[metric][i] - items[i] for i in sorted(items)]),
                                                seed=seed).as_dict() for metric, items in base.items()}
        report["tasks"][task] = entry
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_json(report, output / "benchmark.json")
    return report


def format_benchmark(report: dict[str, Any]) -> str:
    """One before/after table per task, in the layout of `instruct eval`."""
    from instruct.evaluate import format_table

    return "\n\n".join(f"{task}\n" + format_table(entry) for task, entry in report["tasks"].items())
