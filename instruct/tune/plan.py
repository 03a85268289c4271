"""How long to train and how big an optimizer step is, from the data when the recipe does not say.

The rule (each part applies only where the recipe leaves the key unset):
- epochs = clamp(ceil(TARGET_STEPS x max examples per step / examples), 1, MAX_EPOCHS): large data
  gets one epoch, a few hundred examples get MAX_EPOCHS (LLaMA-Factory's default is 3);
- examples per step = clamp(round(epochs x examples / TARGET_STEPS), MIN_EXAMPLES_PER_STEP,
  MAX_STEP_TOKENS / mean example tokens): about TARGET_STEPS optimizer steps when the data allows
  it, never steps of fewer than MIN_EXAMPLES_PER_STEP examples, never more than MAX_STEP_TOKENS
  (`tokens_per_step` in the recipe sets the step's size instead, as a batch size does in TRL);
- the step is split into as few micro-batches as the memory plan allows (`grad_accum`);
- the learning rate defaults per method (LR_DEFAULTS): adapters, full weights and virtual tokens
  differ by orders of magnitude.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from instruct.tune.packing import BatchPlan

TARGET_STEPS = 100
MAX_EPOCHS = 3
MIN_EXAMPLES_PER_STEP = 4
MAX_STEP_TOKENS = 16384
LR_DEFAULTS = {"lora": 2e-4, "dora": 2e-4, "rslora": 1e-4, "qlora": 2e-4, "ia3": 3e-3, "full": 2e-5, "freeze": 5e-5,
               "bitfit": 1e-3, "prompt_tuning": 3e-2, "prefix_tuning": 1e-2, "p_tuning": 1e-2, "adalora": 5e-4,
               "lora_plus": 1e-4, "pissa": 2e-4, "houlsby": 1e-3, "pfeiffer": 1e-3, "parallel_adapter": 1e-3,
               "unipelt": 1e-3}


@dataclass
class StepPlan:
    """What the run will do, printed before training and kept in result.json."""

    examples: int
    epochs: float
    steps: int
    examples_per_step: float
    tokens_per_step: float
    micro_batch_tokens: int
    grad_accum: int
    lr: float
    lr_source: str

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def default_epochs(examples: int, max_per_step: int) -> int:
    return min(MAX_EPOCHS, max(1, math.ceil(TARGET_STEPS * max_per_step / examples)))


def examples_per_step(examples: int, epochs: float, max_per_step: int) -> int:
    return min(max_per_step, max(MIN_EXAMPLES_PER_STEP, round(epochs * examples / TARGET_STEPS)))


def plan_steps(lengths: np.ndarray, *, memory_micro_tokens: int, pack: bool, seed: int, world: int, method: str,
               lr: float | None, epochs: float | None, grad_accum: int | None, micro_batch_tokens: int | None,
               max_steps: int | None, groups: np.ndarray | None = None,
               tokens_per_step: int | None = None) -> tuple[StepPlan, BatchPlan]:
    """The step plan and the micro-batch plan it runs on; explicit recipe values win over the rule.

    `groups` (a source per row) keeps each micro-batch within one source, for loss per source."""
    count, longest, mean = len(lengths), int(lengths.max()), float(lengths.mean())
    max_per_step = max(1, int(MAX_STEP_TOKENS // mean))
    epochs = epochs if epochs is not None else default_epochs(count, max_per_step)
    micro = micro_batch_tokens or memory_micro_tokens
    if grad_accum is None:
        step_tokens = tokens_per_step or examples_per_step(count, epochs, max_per_step) * mean
        grad_accum = max(1, math.ceil(step_tokens / (micro * world)))
        if micro_batch_tokens is None:  # the smallest micro-batch that still makes the step in grad_accum parts
            # (plus one mean example, as packed bins are not filled to the last token; a step size given in
            # tokens is a ceiling instead)
            slack = 0 if tokens_per_step else mean
            micro = max(longest, min(micro, math.ceil(step_tokens / (grad_accum * world) + slack)))
    batches = BatchPlan(lengths, micro, pack, seed, groups)
    per_step = grad_accum * world
    first = batches.epoch(0)
    steps = max_steps or max(1, math.ceil(batches.micro_batches_for(epochs) / per_step))
    if max_steps:
        epochs = steps * per_step / len(first)
    lr_source = "train.lr" if lr is not None else f"{method} default"
    plan = StepPlan(count, round(epochs, 3), steps, round(count / len(first) * per_step, 2),
                    round(float(lengths.sum()) / len(first) * per_step, 1), micro, grad_accum,
                    lr if lr is not None else LR_DEFAULTS[method], lr_source)
    return plan, batches
