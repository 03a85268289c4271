"""Typed tune recipes: YAML in `trainer/` -> TuneConfig, with every key overridable as key=value."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from instruct.config import ConfigError, from_dict, load_yaml
from instruct.overrides import apply

METHODS = ("lora", "dora", "rslora", "qlora", "adalora", "lora_plus", "pissa", "full", "freeze", "bitfit",
           "prompt_tuning", "prefix_tuning", "p_tuning", "ia3", "houlsby", "pfeiffer", "parallel_adapter", "unipelt")
PEFT_ADAPTERS = ("lora", "dora", "rslora", "qlora", "adalora", "lora_plus", "pissa", "prompt_tuning", "prefix_tuning",
                 "p_tuning", "ia3")
LORA_FAMILY = ("lora", "dora", "rslora", "qlora", "lora_plus", "pissa")
VIRTUAL_TOKEN_METHODS = ("prompt_tuning", "prefix_tuning", "p_tuning")
BOTTLENECK_ADAPTERS = ("houlsby", "pfeiffer", "parallel_adapter", "unipelt")  # instruct.tune.bottleneck
PREFERENCE_OBJECTIVES = ("reward", "dpo")  # trained on PREFERENCE pairs through the shared loop
ONLINE_OBJECTIVES = ("ppo", "grpo")  # generate from the policy: their own loop (instruct.tune.rl)
PREFERENCE_LOSSES = ("dpo", "ipo", "simpo", "orpo")
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "simpo": 2.0, "orpo": 0.1, "kto": 0.1}  # the papers' settings


@dataclass
class DataConfig:
    """Where examples come from and how they become token sequences."""

    path: str = ""  # EXAMPLE/DOCUMENT/mixed shards folder, .arrow file, or chat or document .jsonl/.json
    # auto: EXAMPLE rows sft, DOCUMENT rows pretrain (per row in a mix), PREFERENCE rows dpo
    objective: Literal["auto", "sft", "pretrain", "reward", "dpo", "ppo", "grpo"] = "auto"
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

    name: Literal["lora", "dora", "rslora", "qlora", "adalora", "lora_plus", "pissa", "full", "freeze", "bitfit",
                  "prompt_tuning", "prefix_tuning", "p_tuning", "ia3", "houlsby", "pfeiffer", "parallel_adapter",
                  "unipelt"] = "lora"
    r: int = 16  # LoRA rank (AdaLoRA: the initial rank of every module)
    alpha: float = 32.0
    # 0, as peft, LLaMA-Factory and unsloth: dropout keeps a mask and a second copy of every adapter input
    # (+73 % saved activations on SmolLM2, bench/README.md)
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    init_lora_weights: str = "default"  # default | gaussian | pissa | pissa_niter_N | olora (peft's initialisations)
    target_r: int = 8  # adalora: the average rank the budget shrinks to
    tinit: int = 0  # adalora: steps before ranks start to shrink
    tfinal: int = 0  # adalora: last steps with ranks fixed
    delta_t: int = 1  # adalora: steps between budget allocations
    lora_plus_ratio: float = 16.0  # lora_plus: lr(B) = ratio * lr(A) (Hayou et al. 2024)
    num_virtual_tokens: int = 20  # prompt/prefix/p-tuning
    prompt_init_text: str | None = None  # prompt tuning: initialise virtual tokens from this text
    prefix_projection: bool = False  # prefix tuning: reparameterise the prefix through an MLP (Li & Liang 2021)
    encoder_hidden_size: int = 128  # p_tuning's prompt encoder / the prefix projection MLP width
    reduction_factor: int = 16  # bottleneck adapters: hidden size / bottleneck size
    non_linearity: Literal["relu", "gelu", "silu", "tanh"] = "relu"  # bottleneck adapters
    adapter_scaling: float = 4.0  # parallel_adapter: output scale s (He et al. 2022)
    trainable_layers: int = 2  # freeze: train only the top k decoder layers (+ final norm)
    include_norms: bool = False  # bitfit: also train normalisation weights (needed for bias-free models like Llama)
    double_quant: bool = True  # qlora: NF4 with double quantisation
    loss: Literal["dpo", "ipo", "simpo", "orpo", "kto"] = "dpo"  # objective dpo: which preference loss
    beta: float | None = None  # dpo/ipo: KL strength; simpo: reward scale (default per loss: DEFAULT_BETA)
    gamma: float = 0.5  # simpo: target reward margin
    orpo_lambda: float = 0.1  # orpo: weight of the odds-ratio term beside the chosen answer's NLL
    desirable_weight: float = 1.0  # kto: lambda_D, the weight of desirable (chosen) answers
    undesirable_weight: float = 1.0  # kto: lambda_U, the weight of undesirable (rejected) answers

    @property
    def preference_beta(self) -> float:
        return self.beta if self.beta is not None else DEFAULT_BETA[self.loss]


@dataclass
class RLConfig:
    """Online RL (objective ppo / grpo): generation, rewards, KL control, the PPO update."""

    prompts: str = ""  # prompts: JSONL ({prompt} / {messages} / PREFERENCE) or shards; `--prompts`
    reward: str = ""  # a reward-model folder (instruct tune reward) or module:function(prompts, completions) -> floats
    prompts_per_step: int = 8
    num_generations: int = 4  # completions per prompt (grpo: the group; ppo: independent samples)
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    kl_beta: float = 0.05  # KL penalty to the base (adapter disabled) / initial policy
    target_kl: float | None = None  # adaptive KL (Ziegler et al. 2019): beta follows this per-sequence KL
    kl_horizon: int = 10000
    ppo_epochs: int = 2  # passes over each batch of rollouts
    clip_range: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95  # GAE lambda
    ptx_coef: float = 0.0  # PPO-ptx: weight of the SFT/pretraining loss on `data.path` examples (0: off)


@dataclass
class UnfreezeSchedule:
    """Gradual unfreezing (ULMFiT): the top `initial_layers` blocks train first, `add_layers` more every `every_steps`."""

    initial_layers: int = 1
    every_steps: int = 50
    add_layers: int = 1


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): the student also matches the teacher's token distributions."""

    teacher: str = ""  # a local HF folder or .gguf sharing the student's tokenizer
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    temperature: float = 2.0  # both distributions are softened by T; the loss is scaled by T^2
    alpha: float = 0.5  # weight of the distillation term; (1 - alpha) weighs cross-entropy on the labels
    jsd_beta: float = 0.5  # jsd: the mixture weight of the generalised Jensen-Shannon divergence


@dataclass
class FSDPConfig:
    """FSDP2 (`torch.distributed.fsdp.fully_shard`) under torchrun / accelerate: every decoder block and the
    root shard their weights, gradients and optimizer state over the processes, so a process holds 1/N of
    them instead of a whole copy (DDP); checkpoints are sharded (torch.distributed.checkpoint)."""

    param_dtype: Literal["auto", "fp32", "bf16"] = "auto"  # what blocks gather and compute in; auto: the run's dtype
    reduce_dtype: Literal["fp32", "bf16"] = "fp32"  # gradients are reduce-scattered (averaged) in this dtype
    cpu_offload: bool = False  # CPUOffloadPolicy: sharded weights, gradients, optimizer step in host RAM (GPU runs)
    reshard_after_forward: bool = True  # free a block's gathered weights after forward (gathered again in backward)


FSDP_METHODS = ("lora", "dora", "rslora", "lora_plus", "pissa", "full", "freeze", "bitfit")  # plain trainable tensors


@dataclass
class TrainConfig:
    """The optimisation loop. Keys left unset (None) are planned from the data, the model and the memory
    budget (see tune/plan.py and tune/memory.py); the plan is printed before training."""

    lr: float | None = None  # default per method (plan.LR_DEFAULTS): 2e-4 LoRA, 2e-5 full, 3e-2 prompt tuning, ...
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int | None = None  # default: warmup_ratio of max steps
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    max_steps: int | None = None  # default: epochs over the data
    epochs: float | None = None  # default: 3 for small data, down to 1 for large (about 100 steps; plan.py)
    micro_batch_tokens: int | None = None  # one forward/backward; default: the largest that fits memory_budget
    grad_accum: int | None = None  # micro-batches per optimizer step (per process); default: from the step plan
    tokens_per_step: int | None = None  # the optimizer step's size in tokens (all processes); the plan splits it
    memory_budget: str | float | None = None  # e.g. 6GB, 800MB; default: what is loaded + 1/4 of free RAM (<= 1.5 GB)
    max_grad_norm: float = 1.0
    grad_checkpointing: bool | None = None  # default: on only when the micro-batch would not fit the budget
    trained_logits_only: bool = True  # packed rows: run the LM head only where a token is trained
    loss_chunk_tokens: int = 512  # the LM head and cross-entropy run over this many tokens at a time
    dtype: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on bf16 GPUs and AVX512-BF16/AMX CPUs
    optimizer: Literal["auto", "adamw", "adamw_8bit", "paged_adamw_8bit"] = "auto"  # auto: paged 8-bit for QLoRA on GPU
    attn_implementation: str = "auto"  # auto: packed_sdpa when packing, else sdpa; or eager, flash_attention_2, ...
    report_to: list[Literal["tensorboard", "mlflow", "trackio"]] = field(default_factory=list)  # besides the JSON log
    seed: int = 0
    eval_every: int = 50
    save_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 1
    resume: bool | Literal["force"] = True  # continue from the newest checkpoint if made under this config and data;
    # false: start over (old checkpoints removed); force: continue even if config or data changed
    threads: int | None = None  # torch CPU threads; default: torch's choice
    unfreeze_schedule: UnfreezeSchedule | None = None  # freeze/full: unfreeze blocks top-down as training goes
    fsdp: FSDPConfig | bool | None = None  # true (or a mapping of FSDPConfig keys): shard with FSDP2, not DDP

    def __post_init__(self) -> None:
        if isinstance(self.fsdp, bool):  # `train.fsdp=true` on the command line: the defaults
            self.fsdp = FSDPConfig() if self.fsdp else None


@dataclass
class TuneConfig:
    """A whole tune recipe."""

    model: str | None = None  # HF folder or .gguf; None: the embedded SmolLM2-135M-Instruct
    output: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    merge: bool = False  # also write DIR/merged: the adapter folded into the base (dequantised after QLoRA)
    distill: DistillConfig | None = None  # train against a teacher's distributions (trainer/distill.yaml)

    def validate(self) -> TuneConfig:
        online = self.data.objective in ONLINE_OBJECTIVES
        if online and not (self.rl.prompts and self.rl.reward):
            raise ConfigError(f"objective {self.data.objective}: needs rl.prompts and rl.reward (--prompts, --reward)")
        if not online and not self.data.path:
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
            (self.train.micro_batch_tokens is None or self.train.micro_batch_tokens >= self.data.max_length,
             (f"train.micro_batch_tokens={self.train.micro_batch_tokens} is below data.max_length="
              f"{self.data.max_length} (one example must fit a micro-batch): set train.micro_batch_tokens="
              f"{self.data.max_length} or more, or data.max_length={self.train.micro_batch_tokens}, or leave "
              "train.micro_batch_tokens unset for the planner to choose")),
            (self.train.grad_accum is None or self.train.grad_accum >= 1, "train.grad_accum must be >= 1"),
            (self.train.tokens_per_step is None or self.train.tokens_per_step >= 1, "train.tokens_per_step must be >= 1"),
            (self.train.tokens_per_step is None or self.train.grad_accum is None,
             "train.tokens_per_step and train.grad_accum both size the step: set one of them"),
            (self.train.lr is None or self.train.lr > 0, "train.lr must be > 0"),
            (self.train.max_steps is None or self.train.max_steps > 0, "train.max_steps must be > 0"),
            (self.train.epochs is None or self.train.epochs > 0, "train.epochs must be > 0"),
            (self.train.loss_chunk_tokens > 0, "train.loss_chunk_tokens must be > 0"),
            (self.train.save_every > 0 and self.train.eval_every > 0 and self.train.log_every > 0,
             "train.save_every, eval_every and log_every must be > 0"),
            (not (self.merge and self.method.name in VIRTUAL_TOKEN_METHODS + BOTTLENECK_ADAPTERS),
             f"merge: {self.method.name} adds modules of its own, there are no weights to merge"),
            (self.method.reduction_factor >= 1, "method.reduction_factor must be >= 1"),
            (self.method.lora_plus_ratio > 0, "method.lora_plus_ratio must be > 0"),
            (self.method.name != "adalora" or 0 < self.method.target_r <= self.method.r,
             "method.target_r must be in 1..method.r for adalora"),
            (self.method.name != "adalora" or self.train.max_steps is None
             or self.method.tinit + self.method.tfinal < self.train.max_steps, adalora_schedule_error(
                 self.method, self.train.max_steps, "train.max_steps")),
            (self.train.unfreeze_schedule is None or self.method.name in ("freeze", "full"),
             "train.unfreeze_schedule works with method.name freeze or full"),
            (self.train.unfreeze_schedule is None or (self.train.unfreeze_schedule.every_steps >= 1
                                                     and self.train.unfreeze_schedule.initial_layers >= 1),
             "train.unfreeze_schedule: every_steps and initial_layers must be >= 1"),
            (self.distill is None or bool(self.distill.teacher),
             "distill.teacher: no teacher model given (use --teacher MODEL)"),
            (self.distill is None or (self.distill.temperature > 0 and 0 <= self.distill.alpha <= 1
                                      and 0 < self.distill.jsd_beta < 1),
             "distill: temperature must be > 0, alpha in [0, 1], jsd_beta in (0, 1)"),
            (self.distill is None or self.data.objective in ("auto", "sft"),
             "distill: distillation trains with the sft objective"),
            (self.method.preference_beta > 0, "method.beta must be > 0"),
            (self.rl.num_generations >= 1 + (self.data.objective == "grpo"),
             "rl.num_generations must be >= 2 for grpo (advantages are relative to the group)"),
            (not (self.data.objective in PREFERENCE_OBJECTIVES + ONLINE_OBJECTIVES
                  and self.method.name in VIRTUAL_TOKEN_METHODS + BOTTLENECK_ADAPTERS),
             f"objective {self.data.objective}: method {self.method.name} is not supported (use lora, qlora or full)"),
            (not (self.data.objective == "reward" and self.method.name in ("freeze", "bitfit")),
             f"objective reward: method {self.method.name} would leave the new score head untrained"),
            (self.train.fsdp is None or self.method.name in FSDP_METHODS,
             f"train.fsdp: method {self.method.name} is not supported under FSDP (use one of {', '.join(FSDP_METHODS)})"),
            (self.train.fsdp is None or (self.train.unfreeze_schedule is None and self.distill is None),
             "train.fsdp: unfreeze_schedule and distill run with DDP only"),
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
    data = apply(load_yaml(recipe) if recipe else {}, overrides or [], values)
    return from_dict(TuneConfig, data, str(recipe) if recipe else "").validate()


def adalora_schedule_error(method: MethodConfig, steps: int, source: str) -> str:
    """AdaLoRA shrinks ranks between its warm-up (tinit) and final (tfinal) phases: they need room."""
    return (f"method.tinit + method.tfinal ({method.tinit} + {method.tfinal}) leave no steps to reallocate "
            f"ranks in {steps} steps ({source}): lower them or train longer")
