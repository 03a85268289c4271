"""What some methods do between optimizer steps: AdaLoRA's rank allocation and gradual unfreezing.

Unfreezing is a pure function of the step, so a resumed run re-applies the unfreezing of its
checkpoint's step before loading the weights; AdaLoRA's importance averages and rank pattern are
not, so they travel in the checkpoint (`state` / `load_state`). Every
parameter the schedule will ever train sits in the optimizer from the start (AdamW skips
parameters without a gradient, so frozen ones are untouched until their turn).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from instruct.config import ConfigError
from instruct.tune.config import MethodConfig, TuneConfig, adalora_schedule_error
from instruct.tune.layers import decoder_layers
from instruct.tune.methods import unfreeze_top_layers

ADALORA_AVERAGES = ("ipt", "exp_avg_ipt", "exp_avg_unc")  # the rank allocator's per-weight statistics


class StepHooks:
    """Per-step work of the chosen method; does nothing for methods that need none."""

    def __init__(self, model: nn.Module, config: TuneConfig) -> None:
        self.model, self.config = model, config
        self.schedule = config.train.unfreeze_schedule
        self.layers = len(decoder_layers(model)) if self.schedule else 0

    def prepare_optimizer(self) -> None:
        """With a schedule, every parameter it will unfreeze must be in the optimizer: mark them before it is built."""
        if self.schedule:
            unfreeze_top_layers(self.model, self.layers)
            if self.config.method.name == "full":
                self.model.requires_grad_(True)

    def unfrozen_layers(self, step: int) -> int:
        """Blocks trainable during optimizer step `step` (1-based)."""
        assert self.schedule is not None
        grown = self.schedule.initial_layers + self.schedule.add_layers * ((step - 1) // self.schedule.every_steps)
        return min(self.layers, grown)

    def before_step(self, step: int) -> None:
        if not self.schedule:
            return
        count = self.unfrozen_layers(step)
        self.model.requires_grad_(False)
        unfreeze_top_layers(self.model, count)
        if count == self.layers and self.config.method.name == "full":
            self.model.requires_grad_(True)  # all blocks thawed: the embeddings follow

    def after_optimizer_step(self, step: int) -> None:
        """AdaLoRA: update importance scores and mask ranks (after the step, before zero_grad)."""
        if self.config.method.name == "adalora":
            self.model.base_model.update_and_allocate(step)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able values) a checkpoint must keep for the run to resume exactly."""
        if self.config.method.name != "adalora":
            return {}, {}
        allocator = self.model.base_model.rankallocator
        tensors = {f"{kind}/{name}": tensor for kind in ADALORA_AVERAGES
                   for name, tensor in getattr(allocator, kind).items()}
        pattern = self.model.peft_config["default"].rank_pattern
        return tensors, {"adalora_rank_pattern": pattern}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        if self.config.method.name != "adalora":
            return
        allocator = self.model.base_model.rankallocator
        for kind in ADALORA_AVERAGES:
            setattr(allocator, kind, {key.partition("/")[2]: tensor for key, tensor in tensors.items()
                                      if key.startswith(f"{kind}/")})
        self.model.peft_config["default"].rank_pattern = values.get("adalora_rank_pattern")

    def summary(self, step: int) -> dict[str, Any]:
        """Extra result.json fields: AdaLoRA's final rank per module, the layers unfrozen at the end."""
        if self.config.method.name == "adalora":
            return {"adalora_ranks": adalora_ranks(self.model)}
        if self.schedule:
            return {"unfrozen_layers": self.unfrozen_layers(max(step, 1))}
        return {}


def set_total_steps(model: nn.Module, steps: int, method: MethodConfig) -> None:
    """AdaLoRA plans its rank budget over the run: give it the planned length (its allocator reads the same config)."""
    for config in getattr(model, "peft_config", {}).values():
        if hasattr(config, "total_step"):
            if config.tinit + config.tfinal >= steps:
                raise ConfigError(adalora_schedule_error(method, steps, "the planned run"))
            config.total_step = steps


def adalora_ranks(model: nn.Module) -> dict[str, int]:
    """Ranks AdaLoRA kept per module: non-zero entries of each singular-value vector lora_E."""
    return {name.replace(".lora_E.default", "").removeprefix("base_model.model."): int((p != 0).sum())
            for name, p in model.named_parameters() if ".lora_E." in name}
