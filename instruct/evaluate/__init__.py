"""`instruct eval`: did the data help? Base model vs base + adapter on held-out EXAMPLE data.

Examples whose meta carries answer choices are scored by rank classification (accuracy);
the others by greedy generation (exact match and ROUGE-L). With an adapter, both models are
scored on the same items and the difference gets a paired bootstrap interval.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instruct.evaluate.metrics import Estimate, answer_rouge_l, bootstrap, exact_match
from instruct.io.examples import load_examples
from instruct.io.shards import atomic_path, write_json
from instruct.schema import load_meta

CHOICE_KEYS = ("answer_choices", "choices")  # where templated examples keep their options in meta


@dataclass
class EvalConfig:
    data: str
    output: str
    model: str | None = None  # HF folder or .gguf; None = the embedded default model
    adapter: str | None = None
    limit: int | None = None  # evaluate the first N examples only
    batch_size: int = 16
    max_new_tokens: int = 64
    length_normalize: bool = False  # rank by mean instead of summed log-likelihood
    seed: int = 0
    cot: bool = False  # also score chain-of-thought answers (see instruct/evaluate/cot.py)
    cot_demos: str | None = None  # EXAMPLE rows with rationales: few-shot CoT; None: zero-shot
    cot_shots: int = 3
    cot_max_new_tokens: int = 256
    samples: int = 1  # K > 1: self-consistency, majority vote over K sampled rationales
    temperature: float = 0.7  # for those samples


@dataclass
class ModelResult:
    predictions: list[dict[str, Any]] = field(default_factory=list)
    per_item: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> 0/1 or score per item

    def summary(self, seed: int) -> dict[str, dict[str, float]]:
        return {metric: bootstrap(values, seed=seed).as_dict() for metric, values in self.per_item.items()}


def choices_of(example: dict[str, Any]) -> list[str] | None:
    meta = load_meta(example.get("meta"))
    for key in CHOICE_KEYS:
        if meta.get(key):
            return [str(c) for c in meta[key]]
    return None


def evaluate_model(model: Any, tokenizer: Any, examples: list[dict[str, Any]], config: EvalConfig) -> ModelResult:
    from instruct.evaluate.scoring import generate, rank_classify

    result = ModelResult()
    choice_items = [(i, e, choices_of(e)) for i, e in enumerate(examples)]
    classify = [(i, e, c) for i, e, c in choice_items if c]
    open_ended = [(i, e) for i, e, c in choice_items if not c]
    rows: dict[int, dict[str, Any]] = {}
    if classify:
        scores = rank_classify(model, tokenizer, [(e["messages"][:-1], c) for _, e, c in classify],
                               config.batch_size, config.length_normalize)
        correct = []
        for (i, e, choices), choice_scores in zip(classify, scores):
            target = e["messages"][-1]["content"]
            chosen = choices[int(np.argmax(choice_scores))]
            correct.append(float(chosen.strip() == target.strip()))
            rows[i] = {"id": e["id"], "prediction": chosen, "target": target, "scores": choice_scores}
        result.per_item["accuracy"] = np.array(correct)
    if open_ended:
        replies = generate(model, tokenizer, [e["messages"][:-1] for _, e in open_ended], config.max_new_tokens,
                           max(1, config.batch_size // 2))
        em, rouge = [], []
        for (i, e), reply in zip(open_ended, replies):
            target = e["messages"][-1]["content"]
            em.append(exact_match(reply, target))
            rouge.append(answer_rouge_l(reply, target))
            rows[i] = {"id": e["id"], "prediction": reply, "target": target}
        result.per_item["exact_match"] = np.array(em)
        result.per_item["rouge_l"] = np.array(rouge)
    if config.cot:
        from instruct.evaluate.cot import score_cot

        score_cot(model, tokenizer, examples, config, result.per_item, rows)
    result.predictions = [rows[i] for i in sorted(rows)]
    return result


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Score the base model (and the adapter, if any); write eval.json and predictions.jsonl."""
    examples = load_examples(config.data)[: config.limit]
    if not examples:
        raise ValueError(f"{config.data}: no examples to evaluate")
    output = Path(config.output)
    started = time.perf_counter()
    from instruct.tune import load_model  # one loader for base models, adapters, QLoRA and full fine-tunes

    results = {"base": evaluate_model(*load_model(config.model), examples, config)}
    if config.adapter:
        results["adapter"] = evaluate_model(*load_model(config.model, config.adapter), examples, config)
    report = {
        "config": config.__dict__,
        "examples": len(examples),
        "models": {name: result.summary(config.seed) for name, result in results.items()},
        "seconds": round(time.perf_counter() - started, 2),
    }
    if "adapter" in results:
        report["delta"] = {metric: bootstrap(results["adapter"].per_item[metric] - values, seed=config.seed).as_dict()
                           for metric, values in results["base"].per_item.items()}
    final = results.get("adapter", results["base"])
    write_json(report, output / "eval.json")
    _write_predictions(final.predictions, output / "predictions.jsonl")
    if "adapter" in results:
        _write_predictions(results["base"].predictions, output / "predictions_base.jsonl")
    return report


def format_table(report: dict[str, Any]) -> str:
    """Before/after table: mean and 95 % CI per metric, in points."""
    models = report["models"]
    metrics = sorted(next(iter(models.values())))
    columns = list(models) + (["delta"] if "delta" in report else [])
    lines = [f"{'metric':<14}" + "".join(f"{name:>24}" for name in columns)]
    for metric in metrics:
        cells = [models[name][metric] for name in models] + ([report["delta"][metric]] if "delta" in report else [])
        lines.append(f"{metric:<14}" + "".join(
            f"{str(Estimate(c['mean'], c['ci95_low'], c['ci95_high'], int(c['n']))):>24}" for c in cells))
    lines.append(f"({report['examples']} examples; mean and 95% bootstrap CI, in points)")
    return "\n".join(lines)


def _write_predictions(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
