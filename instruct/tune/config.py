"""Typed tune recipes: YAML in `trainer/` -> TuneConfig, with every key overridable as key=value."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from instruct.config import ConfigError, apply_overrides, from_dict, load_yaml

METHODS = ("lora", "dora", "rslora", "qlora", "full", "freeze", "bitfit", "prompt_tuning", "prefix_tuning", "ia3")
PEFT_ADAPTERS = ("lora", "dora", "rslora", "qlora", "prompt_tuning", "prefix_tuning", "ia3")
VIRTUAL_TOKEN_METHODS = ("prompt_tuning", "prefix_tuning")


@dataclass
class DataConfig:
    """Where examples come from and how they become token sequences."""

    path: str = ""  # EXAMPLE/DOCUMENT/mixed shards folder, .arrow file, or chat or document .jsonl/.json
    objective: Literal["auto", "sft", "pretrain"] = "auto"  # auto: DOCUMENT rows pretrain, EXAMPLE rows sft
    stride: int | None = None  # pretrain: a document window starts every `stride` tokens (None: max_length, no overlap)
    text_field: str = "text"  # JSON(L) documents: the field holding the text
    eval_path: str | None = None  # held-out set; else `eval_fraction` of `path`, split by id hash
    eval_fraction: float = 0.05
    max_eval_examples: int = 512
    template: str = "auto"  # auto (tokenizer's own chat template, else chatml/alpaca) | tokenizer | chatml | alpaca
    max_length: int = 2048  # tokens per example (or document window)
    truncation: Literal["drop", "truncate_prompt"] = "drop"  # never cuts an answer: over-long answers are dropped and counted
    pack: bool = True  # padding-free packing; off for prompt/prefix tuning (virtual tokens prefix each sequence)
    cache: bool = True  # tokenisation cached by content hash under instruct.models.cache_dir()


@dataclass
class MethodConfig:
    """Which parameters train. Keys not used by the chosen method are ignored."""

    name: Literal["lora", "dora", "rslora", "qlora", "full", "freeze", "bitfit",
                  "prompt_tuning", "prefix_tuning", "ia3"] = "lora"
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    num_virtual_tokens: int = 20  # prompt/prefix tuning
    prompt_init_text: str | None = None  # prompt tuning: initialise virtual tokens from this text
    trainable_layers: int = 2  # freeze: train only the top k decoder layers (+ final norm)
    include_norms: bool = False  # bitfit: also train normalisation weights (needed for bias-free models like Llama)
    double_quant: bool = True  # qlora: NF4 with double quantisation


@dataclass
class TrainConfig:
    """The optimisation loop."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int | None = None  # default: warmup_ratio of max steps
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    max_steps: int | None = None  # default: epochs over the data
    epochs: float = 1.0
    micro_batch_tokens: int = 4096  # token budget of one forward/backward (a packed row, or padded examples)
    grad_accum: int = 4  # micro-batches per optimizer step (per process)
    max_grad_norm: float = 1.0
    grad_checkpointing: bool = False
    trained_logits_only: bool = True  # packed rows: run the LM head only where a token is trained
    dtype: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the GPU supports it, else fp32
    optimizer: Literal["auto", "adamw", "adamw_8bit", "paged_adamw_8bit"] = "auto"  # auto: paged 8-bit for QLoRA on GPU
    attn_implementation: str = "auto"  # auto: packed_sdpa when packing, else sdpa; or eager, flash_attention_2, ...
    seed: int = 0
    eval_every: int = 50
    save_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 1
    resume: bool = True  # continue from the newest checkpoint in the output folder
    threads: int | None = None  # torch CPU threads; default: torch's choice


@dataclass
class TuneConfig:
    """A whole tune recipe."""

    model: str | None = None  # HF folder or .gguf; None: the embedded SmolLM2-135M-Instruct
    output: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    merge: bool = False  # also write DIR/merged: the adapter folded into the base (dequantised after QLoRA)

    def validate(self) -> "TuneConfig":
        if not self.data.path:
            raise ConfigError("data.path: no training data given (use --data)")
        if not self.output:
            raise ConfigError("output: no output folder given (use --output)")
        checks = [
            (self.method.r > 0, "method.r must be > 0"),
            (self.method.trainable_layers >= 0, "method.trainable_layers must be >= 0"),
            (0 <= self.data.eval_fraction < 1, "data.eval_fraction must be in [0, 1)"),
            (self.data.max_length > 1, "data.max_length must be > 1"),
            (self.data.stride is None or 0 < self.data.stride <= self.data.max_length,
             "data.stride must be in [1, data.max_length] (a larger stride would skip tokens)"),
            (self.train.micro_batch_tokens >= self.data.max_length,
             "train.micro_batch_tokens must be >= data.max_length (one example must fit a micro-batch)"),
            (self.train.grad_accum >= 1, "train.grad_accum must be >= 1"),
            (self.train.lr > 0, "train.lr must be > 0"),
            (self.train.max_steps is None or self.train.max_steps > 0, "train.max_steps must be > 0"),
            (self.train.epochs > 0, "train.epochs must be > 0"),
            (self.train.save_every > 0 and self.train.eval_every > 0 and self.train.log_every > 0,
             "train.save_every, eval_every and log_every must be > 0"),
            (not (self.merge and self.method.name in VIRTUAL_TOKEN_METHODS),
             f"merge: {self.method.name} adds virtual tokens, there are no weights to merge"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    @property
    def packing(self) -> bool:
        return self.data.pack and self.method.name not in VIRTUAL_TOKEN_METHODS


def load_config(recipe: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, object] | None = None) -> TuneConfig:
    """Recipe YAML (optional) + `key=value` overrides + dotted `values` (CLI flags) -> a validated TuneConfig."""
    data = load_yaml(recipe) if recipe else {}
    apply_overrides(data, list(overrides or []))
    for key, value in (values or {}).items():
        if value is not None:
            _set(data, key, value)
    return from_dict(TuneConfig, data, str(recipe) if recipe else "").validate()


def _set(data: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
    data[leaf] = value
