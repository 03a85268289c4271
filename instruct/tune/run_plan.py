"""The run's plan, decided once before the first step: memory (micro-batch, checkpointing), step size,
epochs and learning rate for every key the recipe leaves unset, printed and kept in DIR/plan.json.

A resumed run reads DIR/plan.json instead of planning again, so a different amount of free memory
on restart cannot change the data order or the schedule.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instruct.config import ConfigError
from instruct.tune.attention import packed_kwargs
from instruct.tune.config import TuneConfig
from instruct.tune.data import TokenizedSet
from instruct.tune.memory import (
    GB,
    MAX_MICRO_TOKENS,
    OPTIMIZER_BYTES,
    activation_bytes,
    budget_for,
    checkpointed_per_token,
    plan_memory,
    resident_bytes,
)
from instruct.tune.methods import trainable_parameters
from instruct.tune.packing import Batch, BatchPlan
from instruct.tune.plan import plan_steps
from instruct.tune.report import peak_rss_mb

PLAN_FILE = "plan.json"
RESOLVED = ("lr", "epochs", "micro_batch_tokens", "grad_accum", "grad_checkpointing")  # what plan.json pins on resume


def probe_batch(tokens: int, vocab: int, pack: bool) -> Batch:
    """One row of `tokens` random ids, every token trained: what the memory probe runs."""
    ids = torch.randint(0, vocab, (1, tokens))
    inputs = ({"input_ids": ids, "position_ids": torch.arange(tokens)[None], **packed_kwargs([tokens])} if pack
              else {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return Batch(inputs, ids.clone(), tokens, tokens)


def plan_run(model: nn.Module, config: TuneConfig, train_set: TokenizedSet, device: torch.device, world: int,
             probe: Callable[[int], torch.Tensor], dtype: torch.dtype, dtype_reason: str,
             saved: dict[str, Any]) -> tuple[TuneConfig, dict[str, Any], BatchPlan]:
    """(config with every planned key filled in, the plan as a record, the micro-batch plan)."""
    settings = replace(config.train, **{k: saved[k] for k in RESOLVED if k in saved and getattr(config.train, k) is None})
    per_token, fixed = activation_bytes(probe, model)
    vocab, resident, trainable = model.config.vocab_size, resident_bytes(device), trainable_parameters(model)[0]
    if config.train.fsdp is not None:  # each process keeps the gradients and AdamW state of its shard only
        trainable //= world
    budget, source = budget_for(settings.memory_budget, device, resident + trainable * OPTIMIZER_BYTES)

    def memory_for(micro: int | None, checkpointing: bool | None):
        return plan_memory(budget=budget, budget_source=source, resident=resident,
                           trainable=trainable, per_token=per_token, fixed_activations=fixed,
                           per_token_checkpointed=checkpointed_per_token(per_token, model, 4),
                           longest=int(train_set.lengths.max()), vocab=vocab, loss_chunk=settings.loss_chunk_tokens,
                           micro_batch_tokens=micro, grad_checkpointing=checkpointing,
                           max_micro_tokens=MAX_MICRO_TOKENS.get(device.type, MAX_MICRO_TOKENS["cpu"]))

    memory = memory_for(settings.micro_batch_tokens, settings.grad_checkpointing)
    steps, batches = plan_steps(train_set.lengths, memory_micro_tokens=memory.micro_batch_tokens, pack=config.packing,
                                seed=settings.seed, world=world, method=config.method.name, lr=settings.lr,
                                epochs=settings.epochs, grad_accum=settings.grad_accum,
                                micro_batch_tokens=settings.micro_batch_tokens, max_steps=settings.max_steps,
                                tokens_per_step=settings.tokens_per_step,
                                groups=getattr(train_set, "groups", None))
    if steps.micro_batch_tokens != memory.micro_batch_tokens:  # the step plan chose a smaller micro-batch
        memory = memory_for(steps.micro_batch_tokens, memory.grad_checkpointing)
    resolved = replace(settings, lr=steps.lr, epochs=steps.epochs, micro_batch_tokens=steps.micro_batch_tokens,
                       grad_accum=steps.grad_accum, grad_checkpointing=memory.grad_checkpointing)
    record = {**steps.summary(), "dtype": str(dtype).removeprefix("torch."), "dtype_reason": dtype_reason,
              "world": world, "memory": {**memory.summary(), "peak_rss_mb_before_training": peak_rss_mb()},
              "resolved": {k: getattr(resolved, k) for k in RESOLVED}}
    return replace(config, train=resolved), record, batches


def read_saved_plan(output: Path, world: int = 1) -> dict[str, Any]:
    """The resolved keys of the run being resumed. On another number of processes the step keeps its
    micro-batches (grad_accum x processes), so the data order and the schedule are those of the saved run."""
    path = output / PLAN_FILE
    if not path.is_file():
        return {}
    plan = json.loads(path.read_text())
    resolved = plan["resolved"]
    saved_world = plan.get("world", 1)
    if saved_world != world and resolved.get("grad_accum"):
        per_step = resolved["grad_accum"] * saved_world
        if per_step % world:
            raise ConfigError(f"{path}: its steps of {per_step} micro-batches ({resolved['grad_accum']} x "
                              f"{saved_world} processes) cannot be split over {world} processes; resume on a "
                              f"divisor of {per_step}")
        resolved = {**resolved, "grad_accum": per_step // world}
    return resolved


def print_plan(plan: dict[str, Any]) -> None:
    memory = plan["memory"]
    over = "  OVER BUDGET: lower train.micro_batch_tokens" if memory["estimate"] > memory["budget"] else ""
    print(f"tune plan: {plan['examples']} examples, {plan['epochs']:g} epochs, {plan['steps']} steps of "
          f"{plan['examples_per_step']:g} examples / {plan['tokens_per_step']:.0f} tokens ({plan['grad_accum']} x "
          f"{plan['micro_batch_tokens']}-token micro-batches x {plan['world']} processes), lr {plan['lr']:g} "
          f"({plan['lr_source']}), {plan['dtype']} ({plan['dtype_reason']})\n"
          f"tune memory: budget {memory['budget'] / GB:.2f} GB ({memory['budget_source']}), estimate "
          f"{memory['estimate'] / GB:.2f} GB (resident {memory['resident'] / GB:.2f}, gradients+optimizer "
          f"{memory['optimizer'] / GB:.2f}, activations {memory['activations_per_token'] / 1024:.0f} KB/token, "
          f"logits chunk {memory['logits_chunk'] / GB:.2f}), activation checkpointing "
          f"{'on' if memory['grad_checkpointing'] else 'off'}{over}", file=sys.stderr)
