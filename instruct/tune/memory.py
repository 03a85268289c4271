"""What a training step costs in memory, and the micro-batch size and checkpointing that fit a budget.

The cost model, in bytes:
    peak = resident now (weights, libraries, data) + trainable x (4 grad + 8 AdamW state)
           + activations_per_token x micro-batch tokens x SAFETY + one chunk of logits
Activations per token are measured on this very model, method and dtype: a forward over two
short probe rows under `saved_tensors_hooks` sums what autograd keeps for backward (weights
excluded), and the difference between the two sizes is the per-token cost. With activation
checkpointing only each layer's input stays (hidden x bytes per layer) plus one layer's full
activations while it is recomputed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from instruct.config import ConfigError

GB = 1024 ** 3
# the default budget: what is loaded already, plus this share of the memory free now, at most WORKING_CAP
# on a CPU (an ordinary 16 GB laptop keeps room for everything else; a GPU is the run's own)
DEFAULT_SHARE = {"cpu": 0.25, "cuda": 0.9}
WORKING_CAP = {"cpu": 1.5 * GB, "cuda": float("inf")}
# peak RSS over the probed activations, measured on SmolLM2-135M LoRA (bench/README.md): backward holds
# gradients of a layer's activations while it runs, and the allocator keeps freed blocks
SAFETY = 2.25
MICRO_TOKENS_STEP = 256
# the largest micro-batch the plan picks by itself: a GPU's throughput grows to a few thousand tokens; a CPU's
# is flat from ~384 tokens on (the same tokens/s at 384, 512, 576 and 1,152 on SmolLM2, one or two threads:
# bench/README.md) while memory grows with every token
MAX_MICRO_TOKENS = {"cpu": 512, "cuda": 4096}
PROBE_TOKENS = (128, 256)
OPTIMIZER_BYTES = 4 + 8  # fp32 gradient + AdamW's two moments, per trainable parameter


@dataclass
class MemoryPlan:
    """The chosen micro-batch and what it is expected to cost (all sizes in bytes)."""

    budget: int
    budget_source: str
    resident: int
    optimizer: int
    activations_per_token: float
    micro_batch_tokens: int
    grad_checkpointing: bool
    logits_chunk: int
    estimate: int

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "budget_gb": round(self.budget / GB, 2), "estimate_gb": round(self.estimate / GB, 2)}


def parse_size(value: str | float, key: str = "train.memory_budget") -> int:
    """'6GB', '800MB', '6 GiB' or a number of GB -> bytes."""
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"{key}: must be > 0, got {value!r}")
        return int(value * GB)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{key}: expected a size such as 6GB or 800MB, got {value!r}")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def free_memory(device: torch.device) -> int:
    """Bytes free for this run: GPU memory free on the device, or MemAvailable plus what this process already holds."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_allocated(device)
    return _meminfo("MemAvailable") + resident_bytes(device)


def resident_bytes(device: torch.device) -> int:
    """What this process holds now: RSS on CPU, allocated tensors on a GPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _page_size()


def budget_for(setting: str | float | None, device: torch.device, committed: int) -> tuple[int, str]:
    """(bytes, where the figure comes from): the setting, else `committed` (weights, optimizer state: needed
    whatever the micro-batch) plus a safe share of the memory free now for the working set."""
    if setting is not None:
        return parse_size(setting), "train.memory_budget"
    kind = device.type if device.type in DEFAULT_SHARE else "cpu"
    free = free_memory(device) - committed
    working = min(free * DEFAULT_SHARE[kind], WORKING_CAP[kind])
    cap = f", at most {WORKING_CAP[kind] / GB:g} GB" if working < free * DEFAULT_SHARE[kind] else ""
    return int(committed + working), (f"{committed / GB:.2f} GB loaded + {DEFAULT_SHARE[kind]:.0%} of "
                                      f"{free / GB:.1f} GB free{cap}")


def activation_bytes(run: Callable[[int], torch.Tensor], model: nn.Module) -> tuple[float, int]:
    """(bytes per token, fixed bytes) that autograd saves for backward in `run(tokens)`, weights excluded."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    weights |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    measured = []
    for tokens in PROBE_TOKENS:
        seen: dict[int, int] = {}

        def pack(tensor: torch.Tensor, seen: dict[int, int] = seen) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in weights:
                seen[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = run(tokens)
        del loss
        measured.append(sum(seen.values()))
    small, large = PROBE_TOKENS
    per_token = max(0.0, (measured[1] - measured[0]) / (large - small))
    return per_token, max(0, int(measured[0] - per_token * small))


def checkpointed_per_token(per_token: float, model: nn.Module, element_bytes: int) -> float:
    """Per-token activations under checkpointing: every layer's input, plus one layer being recomputed."""
    config = model.config if hasattr(model, "config") else model.get_base_model().config
    layers = config.num_hidden_layers
    return layers * config.hidden_size * element_bytes + per_token / layers


def plan_memory(*, budget: int, budget_source: str, resident: int, trainable: int, per_token: float,
                fixed_activations: int, per_token_checkpointed: float, longest: int, vocab: int, loss_chunk: int,
                micro_batch_tokens: int | None, grad_checkpointing: bool | None, max_micro_tokens: int) -> MemoryPlan:
    """The largest micro-batch (<= `max_micro_tokens`, >= the longest example) that fits the budget, without
    checkpointing if it can. A micro-batch or checkpointing set in the recipe is kept as given."""
    optimizer = trainable * OPTIMIZER_BYTES
    logits_chunk = loss_chunk * vocab * 4 * 3  # fp32 logits, their softmax gradient, the low-precision copy
    fixed = resident + optimizer + fixed_activations + logits_chunk

    def cost(tokens: int, checkpointing: bool) -> int:
        return int(fixed + SAFETY * tokens * (per_token_checkpointed if checkpointing else per_token))

    def largest(checkpointing: bool) -> int:
        room = (budget - fixed) / (SAFETY * (per_token_checkpointed if checkpointing else per_token) or 1)
        return min(max_micro_tokens, int(room) // MICRO_TOKENS_STEP * MICRO_TOKENS_STEP)

    options = [grad_checkpointing] if grad_checkpointing is not None else [False, True]
    for checkpointing in options:
        tokens = micro_batch_tokens or max(largest(checkpointing), _round_up(longest))
        if cost(tokens, checkpointing) <= budget or checkpointing == options[-1]:
            break
    if micro_batch_tokens is None and cost(tokens, checkpointing) > budget:
        raise ConfigError(f"train.memory_budget: {budget / GB:.2f} GB ({budget_source}) is too small: the longest "
                          f"example ({longest} tokens) needs about {cost(tokens, checkpointing) / GB:.2f} GB"
                          f"{' with checkpointing' if checkpointing else ''}; raise the budget or lower data.max_length")
    return MemoryPlan(budget, budget_source, resident, optimizer, per_token if not checkpointing else per_token_checkpointed,
                      tokens, checkpointing, logits_chunk, cost(tokens, checkpointing))


def _round_up(tokens: int) -> int:
    return -(-tokens // MICRO_TOKENS_STEP) * MICRO_TOKENS_STEP


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/meminfo has no {key}")


def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")
