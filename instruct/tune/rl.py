"""Online RL from a reward: PPO (Ouyang et al. 2022, with a value head and GAE) and GRPO (Shao et al. 2024).

Each step samples `rl.prompts_per_step` prompts, generates `rl.num_generations` completions
each from the policy, scores them (a reward model folder or a `module:function`), and updates:
- ppo: per-token reward = -beta * (log pi - log pi_ref) plus the score on the last token;
  GAE advantages from a value head on the policy's last hidden state; the clipped surrogate
  and a clipped value loss for `rl.ppo_epochs` passes; optional PPO-ptx (SFT loss on
  `data.path`); adaptive beta (Ziegler et al. 2019) when `rl.target_kl` is set.
- grpo: advantage = the score standardised within its prompt's group, no value head, the
  clipped surrogate plus beta * the k3 KL estimator per token.
The reference is the base with the adapter disabled (a frozen copy for full fine-tuning).
Checkpoints, resume, the JSON log and the plot are the SFT loop's.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from instruct.base_model import identity
from instruct.config import ConfigError, to_dict
from instruct.io.shards import atomic_files, read_shards, read_table, write_json
from instruct.progress import progress_bar
from instruct.tune.card import save_labelled, write_card
from instruct.tune.checkpoint import load_checkpoint, resume_checkpoint, save_checkpoint
from instruct.tune.config import PEFT_ADAPTERS, TuneConfig

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


# --- the pieces with formulas (tested by hand) ---------------------------------------------------

def kl_terms(logps: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token KL estimators of pi against pi_ref at sampled tokens: k1 = log pi - log pi_ref (PPO's
    penalty) and k3 = exp(-k1) - 1 + k1 (GRPO's: unbiased, always >= 0)."""
    k1 = logps - reference
    return k1, torch.exp(-k1) - 1 + k1


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [batch, tokens] (masked tokens end each sequence); (advantages, returns)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros_like(running)
    for t in reversed(range(rewards.shape[1])):
        live = mask[:, t].to(rewards.dtype)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * live
        advantages[:, t] = running
        next_value = values[:, t] * live
    return advantages, (advantages + values) * mask


def group_advantages(scores: torch.Tensor, group: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: each score minus its group's mean, over the group's standard deviation."""
    grouped = scores.view(-1, group)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + eps)).flatten()


def clipped_surrogate(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> torch.Tensor:
    ratio = torch.exp(logps - old_logps)
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


class AdaptiveKL:
    """Ziegler et al. 2019: beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon."""

    def __init__(self, beta: float, target: float | None, horizon: int):
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, samples: int) -> float:
        if self.target:
            self.beta *= 1 + max(-0.2, min(0.2, kl / self.target - 1)) * samples / self.horizon
        return self.beta


# --- prompts and rewards -------------------------------------------------------------------------

def load_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """Prompts as conversations ending with a user turn, from JSONL (`prompt` string/messages, `messages`,
    any preference record) or EXAMPLE / PREFERENCE shards."""
    from instruct.io.records import json_records

    path = Path(path)
    if path.is_dir() or path.suffix == ".arrow":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or shards folder")
        records = (read_shards(path) if path.is_dir() else read_table(path)).to_pylist()
    elif path.is_file():
        records = list(json_records(path))
    else:
        raise FileNotFoundError(f"{path}: no such file or shards folder")
    prompts = []
    for number, record in enumerate(records, 1):
        messages = record.get("prompt", record.get("messages"))
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        messages = list(messages or [])
        while messages and messages[-1].get("role") == "assistant":
            messages.pop()
        if not messages or messages[-1].get("role") != "user":
            raise ConfigError(f"{path}: record {number}: no prompt ending in a user turn "
                              "(expected 'prompt' or 'messages')")
        prompts.append([{"role": m["role"], "content": m["content"]} for m in messages])
    if not prompts:
        raise ConfigError(f"{path}: no prompts")
    return prompts


def reward_function(spec: str, device: torch.device | None = None) -> RewardFn:
    """`module:function` (called with prompt texts and completion texts) or a reward-model folder."""
    if Path(spec).is_dir():
        from instruct.tune.reward import RewardScorer

        return RewardScorer(spec, device=device).score
    module, _, name = spec.partition(":")
    if not name:
        raise ConfigError(f"rl.reward: {spec!r} is neither a reward-model folder nor module:function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"rl.reward: cannot import {spec!r} ({error})") from None


# --- rollouts ------------------------------------------------------------------------------------

class Policy(nn.Module):
    """The tuned model plus (PPO) a value head on its last hidden state: one module to optimise and checkpoint."""

    def __init__(self, model: nn.Module, value_head: nn.Module | None):
        super().__init__()
        self.model, self.value_head = model, value_head

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs of tokens ids[:, start:] (and values at the positions predicting them)."""
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        keep = ids.shape[1] - start + 1  # the vocab projection only where a completion token is predicted
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                         output_hidden_states=self.value_head is not None, logits_to_keep=keep)
        logits = out.logits[:, -keep:-1].float()
        logps = -F.cross_entropy(logits.transpose(1, 2), ids[:, start:], reduction="none")
        if self.value_head is None:
            return logps, None
        return logps, self.value_head(out.hidden_states[-1][:, start - 1:-1].float()).squeeze(-1)


@torch.no_grad()
def generate(model: nn.Module, tokenizer: Any, prompts: list[list[dict[str, str]]], config: TuneConfig,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor, list[str]]:
    """Sample completions: (ids, attention mask, prompt width, completion mask, completion texts)."""
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(encoded):  # left padding: every completion starts at column `width`
        ids[row, width - len(tokens):] = torch.tensor(tokens)
        mask[row, width - len(tokens):] = 1
    was_training = model.training
    model.eval()
    rl = config.rl
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                         temperature=rl.temperature, top_p=rl.top_p, max_new_tokens=rl.max_new_tokens,
                         pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    completion = out[:, width:]
    ended = (completion == tokenizer.eos_token_id).int()
    after_end = (ended.cumsum(1) - ended) > 0  # tokens after the first end-of-turn are padding
    completion_mask = (~after_end).long()
    full_mask = torch.cat([mask.to(device), completion_mask], dim=1)
    decoded = [tokenizer.decode(row[m.bool()], skip_special_tokens=True) for row, m in zip(completion, completion_mask)]
    return out, full_mask, width, completion_mask, decoded


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per sequence over its tokens, then over sequences."""
    return ((values * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


# --- the run -------------------------------------------------------------------------------------

def train_online(config: TuneConfig, *, on_step: Callable[[dict[str, Any]], None] | None = None,
                 show_progress: bool = True) -> Any:
    """PPO or GRPO (`data.objective`) from `rl.prompts` against `rl.reward`; writes what SFT writes."""
    from instruct.tune.methods import apply_method, compute_dtype, default_device, load_base, trainable_parameters
    from instruct.tune.report import JsonLog, peak_rss_mb, plot_losses
    from instruct.tune.templates import select_template
    from instruct.tune.training import TrainResult, build_optimizer, seed_everything, warmup_cosine

    rl, ppo = config.rl, config.data.objective == "ppo"
    prompts = load_prompts(rl.prompts)
    device = default_device()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    scorer = reward_function(rl.reward, device)
    dtype = compute_dtype(config.train.dtype)
    peft_method = config.method.name in PEFT_ADAPTERS
    model, tokenizer = load_base(config.model, dtype=dtype if peft_method else torch.float32,
                                 quantize_4bit=config.method.name == "qlora", device=device)
    template = select_template(tokenizer, config.data.template)
    reference = None if peft_method else copy.deepcopy(model).eval().requires_grad_(False)
    model = apply_method(model, config.method, config.train.grad_checkpointing)
    head = nn.Linear(model.config.hidden_size, 1).to(device) if ppo else None
    if head is not None:
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    policy = Policy(model, head).train()
    sft_data = _ptx_data(config, tokenizer) if ppo and rl.ptx_coef > 0 else None

    total = config.train.max_steps or max(1, math.ceil(len(prompts) * config.train.epochs / rl.prompts_per_step))
    warmup = config.train.warmup_steps if config.train.warmup_steps is not None else int(config.train.warmup_ratio * total)
    optimizer = build_optimizer(policy, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, config.train.min_lr_ratio))
    kl_control = AdaptiveKL(rl.kl_beta, rl.target_kl, rl.kl_horizon)
    output = Path(config.output)
    start = 0
    checkpoint = resume_checkpoint(config, output)  # refuses a checkpoint of another config, as SFT does
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, policy, optimizer, scheduler)
        start, kl_control.beta = state["step"], state.get("kl_beta", kl_control.beta)
    output.mkdir(parents=True, exist_ok=True)
    write_json(to_dict(config), output / "tune_config.json")
    log = JsonLog(output / "train_log.jsonl", keep_until_step=start)
    parameters = [p for p in policy.parameters() if p.requires_grad]
    bar = progress_bar(show_progress, total=total, initial=start, desc=config.data.objective, unit="step")
    seconds, tokens = 0.0, 0
    for step in range(start + 1, total + 1):
        began = time.perf_counter()
        picked = random.Random(config.train.seed * 1_000_003 + step).sample(range(len(prompts)),
                                                                           min(rl.prompts_per_step, len(prompts)))
        batch_prompts = [prompts[i] for i in picked for _ in range(rl.num_generations)]
        ids, mask, width, completion_mask, completions = generate(model, tokenizer, batch_prompts, config, device)
        scores = torch.tensor([float(s) for s in scorer([p[-1]["content"] for p in batch_prompts], completions)],
                              device=device)
        cmask = completion_mask.float()
        with torch.no_grad():
            old_logps, old_values = policy(ids, mask, width)
            with (model.disable_adapter() if reference is None else contextlib.nullcontext()):
                ref_logps = Policy(reference or model, None)(ids, mask, width)[0]
        k1, _ = kl_terms(old_logps, ref_logps)
        sequence_kl = float((k1 * cmask).sum(1).mean())
        if ppo:
            token_rewards = -kl_control.beta * k1 * cmask
            last = (completion_mask.sum(1) - 1).clamp(min=0)
            token_rewards[torch.arange(len(last)), last] += scores
            advantages, returns = gae(token_rewards, old_values * cmask, cmask, rl.gamma, rl.lam)
            live = advantages[cmask.bool()]
            advantages = (advantages - live.mean()) / (live.std() + 1e-8) * cmask
        else:
            advantages = group_advantages(scores, rl.num_generations)[:, None].expand_as(cmask)
        losses = []
        for _ in range(rl.ppo_epochs if ppo else 1):
            logps, values = policy(ids, mask, width)
            loss = _masked_mean(clipped_surrogate(logps, old_logps, advantages, rl.clip_range), cmask)
            if ppo:
                clipped = old_values + (values - old_values).clamp(-rl.value_clip, rl.value_clip)
                value_loss = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
                loss = loss + rl.vf_coef * 0.5 * _masked_mean(value_loss, cmask)
                if sft_data is not None:
                    loss = loss + rl.ptx_coef * _ptx_loss(model, sft_data, step, config, device)
            else:
                loss = loss + kl_control.beta * _masked_mean(kl_terms(logps, ref_logps)[1], cmask)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.train.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss))
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        beta = kl_control.beta
        kl_control.update(sequence_kl, len(batch_prompts))
        seconds += time.perf_counter() - began
        tokens += int(mask.sum())
        record = {"step": step, "loss": sum(losses) / len(losses), "reward": float(scores.mean()),
                  "reward_std": float(scores.std()) if len(scores) > 1 else 0.0, "kl": sequence_kl, "kl_beta": beta,
                  "response_length": float(cmask.sum(1).mean()), "lr": lr, "grad_norm": float(grad_norm),
                  "tokens_per_s": tokens / seconds}
        if step % config.train.save_every == 0 or step == total:
            save_checkpoint(output, step, policy, optimizer, scheduler, {"kl_beta": kl_control.beta},
                            config.train.keep_checkpoints)
        log.write(record)
        bar.update(1)
        bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{sequence_kl:.3f}")
        if on_step is not None:
            on_step(record)
    bar.close()
    trainable, total_params = trainable_parameters(policy)
    rewards = [r["reward"] for r in log.records if "reward" in r]
    result = TrainResult(
        output=str(output), steps=total, train_loss=log.records[-1]["loss"] if log.records else None, eval_loss=None,
        initial_eval_loss=None, examples=len(prompts), eval_examples=0, dropped={}, truncated_prompts=0,
        template=template, packing=False, trainable_parameters=trainable, total_parameters=total_params,
        tokens_per_second=tokens / max(seconds, 1e-9), peak_rss_mb=peak_rss_mb(), resumed_from=start,
        log=log.records, objective=config.data.objective,
        eval_metrics={"first_reward": rewards[0] if rewards else math.nan, "last_reward": rewards[-1] if rewards else math.nan,
                      "last_kl": log.records[-1]["kl"] if log.records else math.nan})
    base = identity(config.model)
    with atomic_files(output) as staging:  # each output file is replaced whole, never half-written
        save_labelled(model, staging, base)
        tokenizer.save_pretrained(staging)
        write_card(staging, config, result, base)
        if head is not None:
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
                      str(staging / "value_head.safetensors"))
    plot_losses(log.records, output / "loss.png", extra=("reward", "kl", "response_length"))
    write_json({k: v for k, v in asdict(result).items() if k != "log"}, output / "result.json")
    return result


def _ptx_data(config: TuneConfig, tokenizer: Any) -> Any:
    """PPO-ptx: the SFT examples of `data.path`, tokenised as for SFT."""
    from instruct.tune.training import prepare_data

    if not config.data.path:
        raise ConfigError("rl.ptx_coef > 0 needs SFT/pretraining examples in data.path (--data)")
    return prepare_data(config, tokenizer, show_progress=False)[0]


def _ptx_loss(model: nn.Module, data: Any, step: int, config: TuneConfig, device: torch.device) -> torch.Tensor:
    """Mean next-token loss on one packed micro-batch of SFT examples (the step picks which)."""
    from instruct.tune.packing import BatchPlan, collate
    from instruct.tune.training import loss_sum

    plan = BatchPlan(data.lengths, config.train.micro_batch_tokens, True, config.train.seed)
    batch = collate(data, plan.micro_batch(step - 1)[1], True).to(device)
    return loss_sum(model, batch, select_logits=False) / max(1, batch.trained)
