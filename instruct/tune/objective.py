"""What a training objective plugs into the shared loop: its model head, data, batches, loss and metrics.

The loop (instruct.tune.loop) owns everything else: optimizer, schedule, accumulation,
distributed, checkpoints, log, plot, saving. `loss_sum` returns a sum over the batch's units
(trained tokens for SFT, pairs for reward/DPO) and `Batch.trained` counts them, so the loop's
normalisation (divide by the step's units) is the same for every objective.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

from instruct.tune.config import TuneConfig


class Objective:
    """Supervised fine-tuning: next-token cross-entropy on assistant tokens (the loop's own functions)."""

    name = "sft"
    task_type = "CAUSAL_LM"  # the peft task type of the model this objective trains

    def __init__(self, config: TuneConfig):
        self.config = config
        self.teacher: nn.Module | None = None  # knowledge distillation (distill.teacher): set by the loop
        self.tables: tuple[Any, Any, str] | None = None  # sft: (train, eval, sft|pretrain|mixed), loaded early
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, float] = defaultdict(float)

    def load(self, **kwargs: Any) -> tuple[nn.Module, Any]:
        from instruct.tune.methods import load_base

        return load_base(self.config.model, **kwargs)

    def setup(self, model: nn.Module) -> None:
        """Called on the loaded base, before the method wraps it (e.g. to keep a frozen reference)."""

    def prepare(self, tokenizer: Any, show_progress: bool) -> tuple[Any, Any]:
        from instruct.tune.training import prepare_data

        return prepare_data(self.config, tokenizer, show_progress, self.tables)

    def collate(self, data: Any, indices: list[int]) -> Any:
        from instruct.tune.packing import collate

        return collate(data, indices, self.config.packing)

    def loss_sum(self, model: nn.Module, batch: Any, select_logits: bool) -> torch.Tensor:
        from instruct.tune.training import loss_sum

        return loss_sum(model, batch, select_logits, self.config.train.loss_chunk_tokens, self.teacher,
                        self.config.distill)

    # --- metrics beside the loss (accuracy, margins): summed per unit, read as means -----------------

    def record(self, name: str, values: torch.Tensor) -> None:
        self._sums[name] += float(values.detach().double().sum())
        self._counts[name] += values.numel()

    def pop_metrics(self, prefix: str = "") -> dict[str, float]:
        means = {prefix + k: self._sums[k] / self._counts[k] for k in self._sums if self._counts[k]}
        self._sums.clear()
        self._counts.clear()
        return means
