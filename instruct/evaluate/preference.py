"""`instruct eval --pairs`: preference accuracy on held-out PREFERENCE pairs, and win rate under a reward model.

- likelihood accuracy: the model gives the chosen answer a higher summed log-prob than the
  rejected one (base, and base + adapter, on the same pairs, with the paired difference);
- implicit-reward accuracy (with --adapter): DPO's reward, log pi_tuned - log pi_base, ranks
  chosen above rejected (the base with the adapter disabled is the reference);
- reward-model accuracy (with --reward): r(chosen) > r(rejected);
- win rate (with --adapter and --reward): greedy answers of tuned vs base, judged by the
  reward model (ties count half).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instruct.evaluate.metrics import bootstrap
from instruct.io.shards import write_json


@dataclass
class PairEvalConfig:
    pairs: str
    output: str
    model: str | None = None
    adapter: str | None = None
    reward: str | None = None
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int = 64


@torch.no_grad()
def pair_logps(model: Any, data: Any, batch_size: int) -> np.ndarray:
    """[pairs, 2] summed log-probs of (chosen, rejected) answers."""
    from instruct.tune.preference_data import collate_pairs, sequence_logps

    device = next(model.parameters()).device
    out = []
    for start in range(0, len(data), batch_size):
        batch = collate_pairs(data, list(range(start, min(len(data), start + batch_size))), pack=False).to(device)
        out.append(sequence_logps(model, batch, select_logits=False)[0].view(-1, 2).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2))


def evaluate_pairs(config: PairEvalConfig) -> dict[str, Any]:
    """Score every held-out pair; writes DIR/pair_eval.json and returns the report."""
    from instruct.tune.methods import load_model
    from instruct.tune.preference_data import load_preferences, tokenize_preferences

    table = load_preferences(config.pairs)
    if config.limit:
        table = table.slice(0, config.limit)
    report: dict[str, Any] = {"pairs": config.pairs, "adapter": config.adapter, "reward": config.reward}
    model, tokenizer = load_model(config.model, config.adapter)
    data = tokenize_preferences(table, tokenizer, 1 << 30, "drop", None)
    report["n"], report["dropped"] = len(data), dict(data.dropped)
    if config.adapter is not None and hasattr(model, "disable_adapter"):
        tuned = pair_logps(model, data, config.batch_size)
        with model.disable_adapter():
            base = pair_logps(model, data, config.batch_size)
        base_right, tuned_right = base[:, 0] > base[:, 1], tuned[:, 0] > tuned[:, 1]
        implicit = (tuned[:, 0] - base[:, 0]) > (tuned[:, 1] - base[:, 1])
        report.update(base_accuracy=bootstrap(base_right).as_dict(), tuned_accuracy=bootstrap(tuned_right).as_dict(),
                      accuracy_difference=bootstrap(tuned_right.astype(float) - base_right).as_dict(),
                      implicit_reward_accuracy=bootstrap(implicit).as_dict())
    else:
        logps = pair_logps(model, data, config.batch_size)
        report["accuracy"] = bootstrap(logps[:, 0] > logps[:, 1]).as_dict()
    if config.reward is not None:
        report.update(_reward_scores(config, table, model, tokenizer))
    write_json(report, Path(config.output) / "pair_eval.json")
    return report


def _reward_scores(config: PairEvalConfig, table: Any, model: Any, tokenizer: Any) -> dict[str, Any]:
    from instruct.tune.reward import RewardScorer

    scorer = RewardScorer(config.reward, batch_size=config.batch_size)
    rows = table.select(["prompt", "chosen", "rejected"]).to_pylist()
    prompts = [r["prompt"] for r in rows]
    chosen = scorer.score(prompts, [r["chosen"][-1]["content"] for r in rows])
    rejected = scorer.score(prompts, [r["rejected"][-1]["content"] for r in rows])
    result: dict[str, Any] = {"reward_accuracy": bootstrap(np.array(chosen) > np.array(rejected)).as_dict()}
    if config.adapter is not None and hasattr(model, "disable_adapter"):
        tuned = _greedy(model, tokenizer, prompts, config)
        with model.disable_adapter():
            base = _greedy(model, tokenizer, prompts, config)
        tuned_scores, base_scores = np.array(scorer.score(prompts, tuned)), np.array(scorer.score(prompts, base))
        result["win_rate"] = bootstrap((tuned_scores > base_scores) + 0.5 * (tuned_scores == base_scores)).as_dict()
    return result


@torch.no_grad()
def _greedy(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], config: PairEvalConfig) -> list[str]:
    from instruct.evaluate.scoring import render_prompt

    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False, return_tensors="pt").input_ids
        out = model.generate(input_ids=ids.to(device), do_sample=False, max_new_tokens=config.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return answers


def format_pair_table(report: dict[str, Any]) -> str:
    lines = [f"pairs: {report['n']}"]
    for key in ("accuracy", "base_accuracy", "tuned_accuracy", "accuracy_difference", "implicit_reward_accuracy",
                "reward_accuracy", "win_rate"):
        if key in report:
            value = report[key]
            lines.append(f"{key:26s} {100 * value['mean']:5.1f} [{100 * value['ci95_low']:5.1f}, "
                         f"{100 * value['ci95_high']:5.1f}]")
    return "\n".join(lines)
