"""What a training run's pieces share (the SFT loop, the objectives, online RL): data preparation,
the summed loss of one batch, the optimizer and its schedule, seeding and the run's result.

Below `loop` (which drives them) and `objective`/`rl` (which call them), so none of those modules
needs another's internals.
"""
from __future__ import annotations

import contextlib
import math
import random
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import nn

from instruct.config import ConfigError
from instruct.models import cache_dir
from instruct.progress import progress_bar
from instruct.tune.config import DistillConfig, TuneConfig
from instruct.tune.data import IGNORE, TokenizedSet, load_examples, resolve_objective, split_eval, tokenize_table
from instruct.tune.distill import distill_loss_sum
from instruct.tune.loss import linear_cross_entropy, trained_outputs
from instruct.tune.methods import parameter_groups
from instruct.tune.packing import Batch


@dataclass
class TrainResult:
    """What a run produced; also written to DIR/result.json."""

    output: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    initial_eval_loss: float | None
    examples: int
    eval_examples: int
    dropped: dict[str, int]
    truncated_prompts: int
    template: str
    packing: bool
    trainable_parameters: int
    total_parameters: int
    tokens_per_second: float
    peak_rss_mb: float
    training_seconds: float = 0.0  # the optimizer steps' wall time (no model load, eval or checkpoint writes)
    resumed_from: int = 0
    peak_rss_mb_per_process: list[float] = field(default_factory=list)  # each process's, in rank order
    peak_device_mb: float | None = None  # GPU: the most this process's tensors held (torch.cuda.max_memory_allocated)
    merged: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)  # steps, step size, dtype, memory: what was decided and why
    method_summary: dict[str, Any] = field(default_factory=dict)  # e.g. AdaLoRA's final ranks
    objective: str = "sft"  # sft (EXAMPLE rows), pretrain (DOCUMENT rows), mixed, reward or dpo
    eval_metrics: dict[str, float] = field(default_factory=dict)  # e.g. held-out pairwise accuracy and margin
    initial_eval_metrics: dict[str, float] = field(default_factory=dict)
    documents: int = 0  # training documents, cut into `windows` sequences
    windows: int = 0
    tokens_trained: int = 0  # target tokens the loss covered over all steps
    eval_perplexity: float | None = None  # exp(eval_loss): held-out perplexity per trained token
    initial_eval_perplexity: float | None = None
    loss_by_source: dict[str, float] = field(default_factory=dict)  # mean train loss per source over the run
    eval_loss_by_source: dict[str, float] = field(default_factory=dict)
    initial_eval_loss_by_source: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)



# --- data ---------------------------------------------------------------------------------------

def load_tables(config: TuneConfig) -> tuple[pa.Table, pa.Table, str]:
    """(train, eval, objective): the rows, split, and checked against `data.objective` (before any model loads)."""
    table = load_examples(config.data.path, config.data.text_field)
    objective = resolve_objective(table, config.data.objective, config.data.path)
    if config.data.eval_path:
        eval_table = load_examples(config.data.eval_path, config.data.text_field)
        resolve_objective(eval_table, config.data.objective, config.data.eval_path)
        return table, eval_table, objective
    return (*split_eval(table, config.data.eval_fraction, config.data.max_eval_examples), objective)


def prepare_data(config: TuneConfig, tokenizer: Any, show_progress: bool = True,
                 tables: tuple[pa.Table, pa.Table, str] | None = None) -> tuple[TokenizedSet, TokenizedSet]:
    """Load, split and tokenise (cached) the training and eval rows: examples whole, documents in windows."""
    train_table, eval_table, _ = tables or load_tables(config)
    cache = cache_dir() / "tokenized" if config.data.cache else None
    tokenize = {"tokenizer": tokenizer, "max_length": config.data.max_length, "truncation": config.data.truncation,
                "cache_root": cache, "stride": config.data.stride}
    with progress_bar(show_progress, total=train_table.num_rows + eval_table.num_rows, desc="tokenise",
                      unit="row") as bar:
        train_set = tokenize_table(train_table, progress=bar, **tokenize)
        eval_set = tokenize_table(eval_table, progress=bar, **tokenize)
    if train_set.documents and show_progress:
        print(f"tune: {train_set.documents} documents -> {train_set.windows} windows of <= {config.data.max_length} "
              f"tokens (stride {config.data.stride or config.data.max_length}), {train_set.examples} examples",
              file=sys.stderr)
    if len(train_set) == 0:
        raise ConfigError(f"{config.data.path}: no trainable examples (dropped: {dict(train_set.dropped)})")
    dropped, truncated = train_set.dropped + eval_set.dropped, train_set.truncated_prompts + eval_set.truncated_prompts
    if (dropped or truncated) and show_progress:  # said up front, and counted again in result.json
        print(f"tune: {sum(dropped.values())} of {train_table.num_rows + eval_table.num_rows} "
              f"rows dropped {dict(dropped)}, {truncated} prompts truncated (data.max_length="
              f"{config.data.max_length}, data.truncation={config.data.truncation})", file=sys.stderr)
    return train_set, eval_set


# --- one forward/backward -----------------------------------------------------------------------

def loss_sum(model: nn.Module, batch: Batch, select_logits: bool, chunk_tokens: int = 1024,
             teacher: nn.Module | None = None, distill: DistillConfig | None = None) -> torch.Tensor:
    """Summed cross-entropy (fp32) over the batch's trained tokens; with a `teacher`, the distillation loss.

    The LM head runs only on trained tokens, `chunk_tokens` at a time (loss.py), so full-vocabulary
    logits never exist for a whole micro-batch. `select_logits` (packed rows) also skips the
    decoder's last gather for untrained positions via transformers' `logits_to_keep`.
    Models that post-process their logits (softcapping) take the plain path.
    """
    if teacher is not None and distill is not None:
        return _distill_loss_sum(model, teacher, batch, select_logits, distill)
    outputs, head, forward = trained_outputs(model, batch.inputs, batch.targets, select_logits)
    labels = batch.targets[batch.targets != IGNORE]
    if head is None:
        return F.cross_entropy(outputs.float(), labels, reduction="sum")
    return linear_cross_entropy(outputs, head, forward, labels, chunk_tokens)


def _distill_loss_sum(model: nn.Module, teacher: nn.Module, batch: Batch, select_logits: bool,
                      distill: DistillConfig) -> torch.Tensor:
    """Student and teacher logits on the trained tokens (both needed whole per token) -> distill.py's loss."""
    targets = batch.targets
    keep = torch.nonzero(targets[0] != IGNORE).squeeze(1) if select_logits else None
    pair = []
    for net in (model, teacher):
        with torch.no_grad() if net is teacher else contextlib.nullcontext():
            if keep is not None:
                pair.append(net(**batch.inputs, use_cache=False, logits_to_keep=keep).logits[0])
            else:
                logits = net(**batch.inputs, use_cache=False).logits[:, -targets.shape[1]:]
                pair.append(logits[targets != IGNORE])
    labels = targets[0, keep] if keep is not None else targets[targets != IGNORE]
    return distill_loss_sum(pair[0], pair[1], labels, distill)


# --- optimizer -----------------------------------------------------------------------------------

def warmup_cosine(total: int, warmup: int, floor: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to `floor`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def build_optimizer(model: nn.Module, config: TuneConfig, device: torch.device) -> torch.optim.Optimizer:
    params = parameter_groups(model, config.method, config.train.lr)
    choice = config.train.optimizer
    if choice == "auto":
        choice = ("paged_adamw_8bit" if device.type == "cuda" else "adamw_8bit") if config.method.name == "qlora" else "adamw"
    kwargs = {"lr": config.train.lr, "betas": tuple(config.train.betas), "weight_decay": config.train.weight_decay}
    if choice == "adamw":
        return torch.optim.AdamW(params, fused=device.type == "cuda", **kwargs)
    import bitsandbytes as bnb

    return (bnb.optim.PagedAdamW8bit if choice == "paged_adamw_8bit" else bnb.optim.AdamW8bit)(params, **kwargs)
