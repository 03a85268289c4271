"""The training loop, top to bottom: data -> model -> optimizer -> steps (eval, checkpoint, log) -> save.

Loss is the sum of cross-entropy over trained tokens divided by the number of trained tokens
in the whole optimizer step (all micro-batches, all processes), so gradient accumulation and
data parallelism give the gradient of one big batch, whatever the micro-batch sizes.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from instruct.base_model import identity
from instruct.config import ConfigError, to_dict
from instruct.io.shards import atomic_files, write_json
from instruct.progress import progress_bar
from instruct.tune import bottleneck
from instruct.tune.attention import register as register_packed_sdpa
from instruct.tune.card import save_labelled, write_card
from instruct.tune.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_method_tensors,
    resume_checkpoint,
    save_checkpoint,
)
from instruct.tune.config import BOTTLENECK_ADAPTERS, ONLINE_OBJECTIVES, PEFT_ADAPTERS, TuneConfig
from instruct.tune.data import TokenizedSet
from instruct.tune.distill import load_teacher
from instruct.tune.fsdp import as_float, full_state_dict, is_sharded, reshard, shard_model
from instruct.tune.method_hooks import StepHooks, set_total_steps
from instruct.tune.methods import apply_method, enable_checkpointing, merge_adapter, trainable_parameters
from instruct.tune.objective import Objective
from instruct.tune.packing import Batch, BatchPlan
from instruct.tune.precision import training_dtype
from instruct.tune.preference_data import data_kind
from instruct.tune.report import JsonLog, peak_rss_mb, plot_losses
from instruct.tune.run_plan import PLAN_FILE, plan_run, print_plan, probe_batch, read_saved_plan
from instruct.tune.sharded_checkpoint import is_sharded_checkpoint, load_sharded_checkpoint, save_sharded_checkpoint
from instruct.tune.templates import select_template
from instruct.tune.trackers import open_trackers
from instruct.tune.training import (
    TrainResult,
    build_optimizer,
    load_tables,
    loss_sum,
    seed_everything,
    warmup_cosine,
)


@dataclass
class Distributed:
    """This process's place in a torchrun / accelerate launch job (world 1 when launched plainly)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(int(os.environ.get("RANK", "0")), world, device)


def attention_implementation(config: TuneConfig) -> str:
    """`auto`: one causal SDPA call per packed example (see attention.py), plain sdpa for padded batches."""
    choice = config.train.attn_implementation
    if choice == "auto":
        choice = "packed_sdpa" if config.packing else "sdpa"
    if choice == "packed_sdpa":
        register_packed_sdpa()
    return choice


# --- data ---------------------------------------------------------------------------------------

# --- one forward/backward -----------------------------------------------------------------------

def accumulate_gradients(model: nn.Module, batches: list[Batch], step_trained: int, dist: Distributed,
                         select_logits: bool, autocast: Any = contextlib.nullcontext,
                         loss_fn: Callable[[nn.Module, Batch, bool], torch.Tensor] = loss_sum,
                         groups: int = 1) -> torch.Tensor:
    """Backward over this process's micro-batches; returns their summed loss per group (source): [groups].

    Each micro-batch's summed loss is divided by `step_trained`, the trained tokens of the whole
    step on all processes, and multiplied by the world size because DDP and FSDP average gradients:
    the result is the gradient of the mean loss per trained token of one big batch.
    """
    step_loss = torch.zeros(groups, dtype=torch.float64, device=dist.device)
    for index, batch in enumerate(batches):
        batch = batch.to(dist.device)
        # DDP all-reduces once per step; FSDP reduce-scatters every micro-batch into its sharded gradients
        sync = not isinstance(model, torch.nn.parallel.DistributedDataParallel) or index == len(batches) - 1
        with (contextlib.nullcontext() if sync else model.no_sync()), autocast():
            summed = loss_fn(model, batch, select_logits)
            (summed * dist.world / step_trained).backward()
        step_loss[getattr(batch, "group", 0)] += summed.detach().double()
    return step_loss


@torch.no_grad()
def evaluate(model: nn.Module, data: TokenizedSet, config: TuneConfig, dist: Distributed, autocast: Any,
             objective: Objective | None = None) -> float | None:
    """Mean loss per unit (trained token; pair for preference objectives) on the held-out set
    (deterministic batches, no dropout); the objective's metrics accumulate in `objective`."""
    return evaluate_by_source(model, data, config, dist, autocast, objective).get("all")


@torch.no_grad()
def evaluate_by_source(model: nn.Module, data: TokenizedSet, config: TuneConfig, dist: Distributed,
                       autocast: Any, objective: Objective | None = None) -> dict[str, float]:
    """Held-out mean loss per unit, overall ("all") and per source; {} without eval data."""
    if len(data) == 0:
        return {}
    was_training = model.training
    model.eval()
    objective = objective or Objective(config)
    names = getattr(data, "source_names", ["data"])
    budget = config.train.micro_batch_tokens or max(int(data.lengths.max()), config.data.max_length)
    batches = BatchPlan(data.lengths, budget, config.packing, 0, getattr(data, "groups", None)).epoch(0)
    total = torch.zeros(len(names), 2, dtype=torch.float64, device=dist.device)
    mine = batches[dist.rank::dist.world]
    # every FSDP forward gathers weights from all processes: each runs as many, the surplus counted nowhere
    rounds = -(-len(batches) // dist.world) if is_sharded(model) else len(mine)
    for round_ in range(rounds):
        batch = objective.collate(data, mine[round_] if round_ < len(mine) else batches[0]).to(dist.device)
        with autocast():
            select_logits = config.packing and config.train.trained_logits_only
            summed = objective.loss_sum(model, batch, select_logits).double()
        if round_ < len(mine):
            total[getattr(batch, "group", 0), 0] += summed
            total[getattr(batch, "group", 0), 1] += batch.trained
    if dist.world > 1:
        torch.distributed.all_reduce(total)
    reshard(model)
    model.train(was_training)
    losses = {"all": float(total[:, 0].sum() / total[:, 1].sum())}
    if len(names) > 1:
        losses.update({name: float(total[i, 0] / total[i, 1]) for i, name in enumerate(names) if total[i, 1] > 0})
    return losses


# --- the run ------------------------------------------------------------------------------------

def objective_for(config: TuneConfig, data_kind: str | None = None) -> Objective:
    """The objective a recipe names (`data.objective`); `auto` is dpo on PREFERENCE data, else sft."""
    name = config.data.objective
    if name == "auto":
        name = "dpo" if data_kind == "PREFERENCE" else "sft"
    if name == "dpo":
        from instruct.tune.dpo import PreferenceObjective

        return PreferenceObjective(config)
    if name == "reward":
        from instruct.tune.reward import RewardObjective

        return RewardObjective(config)
    return Objective(config)


def train(config: TuneConfig, *, on_step: Callable[[dict[str, Any]], None] | None = None,
          show_progress: bool = True) -> TrainResult:
    """Tune `config.model` on `config.data`, writing the adapter (or model), log, plot and checkpoints to `config.output`."""
    config.validate()
    for path in filter(None, (config.data.path, config.data.eval_path)):
        if not Path(path).exists():  # before the slow model load
            raise FileNotFoundError(f"{path}: no such file or shards folder")
    auto = config.data.objective == "auto" and config.data.path
    objective = objective_for(config, data_kind(config.data.path) if auto else None)
    if config.train.fsdp is not None and objective.name != "sft":
        raise ConfigError(f"train.fsdp: objective {objective.name} runs with DDP only (FSDP trains sft and pretrain)")
    if config.data.objective in ONLINE_OBJECTIVES:
        from instruct.tune.rl import train_online

        return train_online(config, on_step=on_step, show_progress=show_progress)
    # a bad file or an objective that does not fit the rows fails here, not after the model load
    objective.tables = load_tables(config) if objective.name == "sft" else None
    output = Path(config.output)
    dist = setup_distributed()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    dtype, dtype_reason = training_dtype(config.train.dtype, dist.device)
    peft_method = config.method.name in PEFT_ADAPTERS
    autocast = (lambda: torch.autocast(dist.device.type, dtype=dtype)) if dtype != torch.float32 else contextlib.nullcontext

    # 1. model and tokenizer; the frozen base of an adapter method may sit in bf16, trained weights stay fp32
    model, tokenizer = objective.load(dtype=dtype if peft_method else torch.float32,
                                      quantize_4bit=config.method.name == "qlora", double_quant=config.method.double_quant,
                                      attn_implementation=attention_implementation(config), device=dist.device)
    template = select_template(tokenizer, config.data.template)
    objective.setup(model)

    # 2. data: tokenised once (cached by content hash)
    train_set, eval_set = objective.prepare(tokenizer, show_progress and dist.main)

    # 3. method, then the plan (run_plan.py): what a micro-batch costs on this model decides its size and
    # checkpointing, the data decides step size and epochs; a resumed run keeps the plan it started with
    checkpointing = bool(config.train.grad_checkpointing)
    model = apply_method(model, config.method, checkpointing, config.train.max_steps, objective.task_type)
    model.train()
    select_logits = config.packing and config.train.trained_logits_only
    vocab = model.config.vocab_size

    def probe(tokens: int) -> torch.Tensor:
        batch = probe_batch(tokens, vocab, config.packing).to(dist.device)
        with autocast():
            if objective.task_type != "CAUSAL_LM":  # a score head: what the backbone keeps is what counts
                return model(**batch.inputs, use_cache=False).logits.float().sum()
            return loss_sum(model, batch, select_logits, config.train.loss_chunk_tokens)

    saved = (read_saved_plan(output, dist.world) if config.train.resume and latest_checkpoint(output) is not None
             else {})
    given = config
    config, run_plan, plan = plan_run(model, given, train_set, dist.device, dist.world, probe, dtype, dtype_reason,
                                      saved)
    if dist.world > 1:  # every process runs rank 0's plan (free memory differs from one moment to the next)
        chosen = [run_plan["resolved"]]
        torch.distributed.broadcast_object_list(chosen, src=0)
        if chosen[0] != run_plan["resolved"]:
            config, run_plan, plan = plan_run(model, given, train_set, dist.device, dist.world, probe, dtype,
                                              dtype_reason, chosen[0])
    objective.config = config
    if run_plan["memory"]["grad_checkpointing"] and not checkpointing:
        enable_checkpointing(model)
    if show_progress and dist.main:
        print_plan(run_plan)
    sources = getattr(train_set, "source_names", ["data"])
    per_step = config.train.grad_accum * dist.world
    total_steps = run_plan["steps"]
    warmup = config.train.warmup_steps if config.train.warmup_steps is not None else int(config.train.warmup_ratio * total_steps)

    # 4. optimizer, schedule; per-step method hooks (AdaLoRA's budget over the planned steps, unfreezing)
    # FSDP shards the model in place before the optimizer is built: its state then covers this process's shards
    set_total_steps(model, total_steps, config.method)
    hooks = StepHooks(model, config)
    hooks.prepare_optimizer()
    trainable, total_params = trainable_parameters(model)
    if config.train.fsdp is not None:
        model = shard_model(model, config.train.fsdp, dtype, dist.device, dist.world)
    optimizer = build_optimizer(model, config, dist.device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup, config.train.min_lr_ratio))
    ddp = dist.world > 1 and config.train.fsdp is None
    wrapped = torch.nn.parallel.DistributedDataParallel(model) if ddp else model

    # 5. resume exactly where a checkpoint left off (weights, optimizer, schedule, RNG; data order follows the step)
    start = 0
    checkpoint = resume_checkpoint(config, output, dist.main, dist.world)
    if checkpoint is not None:
        hooks.before_step(int(checkpoint.name.removeprefix("step-")))  # the checkpoint's trainable set
        saved = restore(checkpoint, model, optimizer, scheduler, dist)
        hooks.load_state(load_method_tensors(checkpoint), saved)
        start = saved["step"]
    objective.teacher = load_teacher(config.distill.teacher, tokenizer, dist.device, dtype) if config.distill else None
    if dist.main:
        output.mkdir(parents=True, exist_ok=True)
        write_json(to_dict(config), output / "tune_config.json")
        write_json(run_plan, output / PLAN_FILE)
    log = JsonLog(output / "train_log.jsonl", keep_until_step=start) if dist.main else None
    trackers = open_trackers(config.train.report_to, output, to_dict(config)) if dist.main else []
    initial_eval, initial_metrics, eval_metrics = None, {}, {}
    if start == 0 and len(eval_set):
        initial = _eval_record(model, eval_set, config, dist, autocast, objective)
        initial_eval, initial_metrics = initial["eval_loss"], objective.pop_metrics("eval_")
        if log is not None:
            log.write({"step": 0, **initial, **initial_metrics})
            for tracker in trackers:
                tracker.log({"step": 0, "eval_loss": initial_eval, **initial_metrics})

    # 6. steps
    parameters = [p for p in model.parameters() if p.requires_grad]
    seen_tokens, training_seconds = 0, 0.0  # tokens/s counts training only, not eval or checkpoint writes
    bar = progress_bar(show_progress and dist.main, total=total_steps, initial=start, desc="tune", unit="step")
    for step in range(start + 1, total_steps + 1):
        step_started = time.perf_counter()
        hooks.before_step(step)
        batches = [objective.collate(train_set, plan.micro_batch((step - 1) * per_step + i)[1])
                   for i in range(per_step)]
        step_trained = sum(b.trained for b in batches)  # the normaliser: every micro-batch of every process
        mine = batches[dist.rank::dist.world]
        step_loss = accumulate_gradients(wrapped, mine, step_trained, dist, select_logits, autocast, objective.loss_sum,
                                         len(sources))
        if dist.world > 1:
            torch.distributed.all_reduce(step_loss)
        grad_norm = as_float(torch.nn.utils.clip_grad_norm_(parameters, config.train.max_grad_norm))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        hooks.after_optimizer_step(step)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        seen_tokens += sum(b.tokens for b in batches)
        training_seconds += time.perf_counter() - step_started
        record = {"step": step, "loss": float(step_loss.sum() / step_trained), "lr": lr, "grad_norm": grad_norm,
                  "trained_tokens": step_trained, "tokens_per_s": seen_tokens / training_seconds,
                  **objective.pop_metrics()}
        if len(sources) > 1:  # loss and trained tokens per source (each micro-batch holds one source)
            trained = {g: sum(b.trained for b in batches if b.group == g) for g in sorted({b.group for b in batches})}
            record["by_source"] = {sources[g]: {"loss": float(step_loss[g] / n), "trained_tokens": n}
                                   for g, n in trained.items()}
        if step % config.train.eval_every == 0 or step == total_steps:
            record.update(_eval_record(model, eval_set, config, dist, autocast, objective))
            eval_metrics = objective.pop_metrics("eval_")
            record.update(eval_metrics)
        if step % config.train.save_every == 0 or step == total_steps:
            if config.train.fsdp is not None:  # every process writes its shards
                save_sharded_checkpoint(output, step, model, optimizer, scheduler, {"seen_tokens": seen_tokens},
                                        config.train.keep_checkpoints, dist.rank)
            elif dist.main:
                method_tensors, method_values = hooks.state()
                save_checkpoint(output, step, model, optimizer, scheduler, {"seen_tokens": seen_tokens, **method_values},
                                config.train.keep_checkpoints, method_tensors)
            if dist.world > 1:
                torch.distributed.barrier()
        if log is not None and (step % config.train.log_every == 0 or "eval_loss" in record or step == total_steps):
            log.write(record)
            for tracker in trackers:
                tracker.log(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if on_step is not None:
            on_step(record)
    bar.close()
    for tracker in trackers:
        tracker.close()

    # 7. outputs: the adapter (or whole model) in DIR itself, tokenizer with the template used, plot, summary
    eval_records = [r for r in (log.records if log else []) if r.get("eval_loss") is not None]
    result = TrainResult(
        output=str(output), steps=total_steps, train_loss=_last(log, "loss"), eval_loss=_last(log, "eval_loss"),
        initial_eval_loss=initial_eval if initial_eval is not None else _first(log, "eval_loss"),
        examples=train_set.examples if objective.tables else len(train_set), eval_examples=len(eval_set),
        dropped=dict(train_set.dropped + eval_set.dropped), truncated_prompts=train_set.truncated_prompts + eval_set.truncated_prompts,
        template=template, packing=config.packing, trainable_parameters=trainable, total_parameters=total_params,
        tokens_per_second=seen_tokens / max(training_seconds, 1e-9), peak_rss_mb=peak_rss_mb(),
        peak_device_mb=torch.cuda.max_memory_allocated(dist.device) / 2**20 if dist.device.type == "cuda" else None,
        training_seconds=training_seconds,
        resumed_from=start, log=log.records if log is not None else [], plan=run_plan,
        method_summary=hooks.summary(total_steps), eval_metrics=eval_metrics, initial_eval_metrics=initial_metrics,
        objective=objective.tables[2] if objective.tables else objective.name,
        documents=getattr(train_set, "documents", 0), windows=getattr(train_set, "windows", 0),
        tokens_trained=planned_trained_tokens(plan, train_set, total_steps * per_step) if objective.tables else 0,
        eval_perplexity=_perplexity(_last(log, "eval_loss")) if objective.tables else None,
        initial_eval_perplexity=(_perplexity(eval_records[0]["eval_loss"]) if objective.tables and eval_records
                                 else None),
        loss_by_source=_source_means(log.records if log else []),
        eval_loss_by_source=eval_records[-1].get("eval_loss_by_source", {}) if eval_records else {},
        initial_eval_loss_by_source=eval_records[0].get("eval_loss_by_source", {}) if eval_records else {})
    # a sharded model is gathered whole on the main process (all take part) and saved as a plain folder
    state = full_state_dict(model, trainable_only=peft_method) if is_sharded(model) else None
    result.peak_rss_mb_per_process = gather_floats(peak_rss_mb(), dist)
    if dist.main:
        base = identity(config.model)  # portable: what the user passed, with its hash (instruct/base_model.py)
        with atomic_files(output) as staging:  # each adapter/model file is replaced whole, never half-written
            if config.method.name in BOTTLENECK_ADAPTERS:
                bottleneck.save(model, staging, config.method, base["name_or_path"])
            else:
                save_labelled(model, staging, base, **({"state_dict": state} if state is not None else {}))
            tokenizer.save_pretrained(staging)
            write_card(staging, config, result, base)
        plot_losses(result.log, output / "loss.png")
        if config.merge and peft_method:
            result.merged = str(merge_adapter(output, output / "merged"))
        write_json({k: v for k, v in asdict(result).items() if k != "log"}, output / "result.json")
    if dist.world > 1:
        torch.distributed.barrier()
    return result


def gather_floats(value: float, dist: Distributed) -> list[float]:
    """`value` from every process, in rank order (a collective: all processes call it)."""
    if dist.world == 1:
        return [value]
    values: list[Any] = [None] * dist.world
    torch.distributed.all_gather_object(values, value)
    return values


def restore(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            dist: Distributed) -> dict[str, Any]:
    """Load either checkpoint format; a sharded one onto any number of processes, sharded or not."""
    if is_sharded_checkpoint(checkpoint):
        return load_sharded_checkpoint(checkpoint, model, optimizer, scheduler, dist.rank)
    if is_sharded(model):
        raise ConfigError(f"{checkpoint}: an unsharded (DDP) checkpoint cannot resume an FSDP run; "
                          "set train.resume=false to start over")
    return load_checkpoint(checkpoint, model, optimizer, scheduler)


def _eval_record(model: nn.Module, data: TokenizedSet, config: TuneConfig, dist: Distributed,
                 autocast: Any, objective: Objective) -> dict[str, Any]:
    """The log's eval fields: eval_loss, and eval_loss_by_source when the held-out set mixes sources."""
    losses = evaluate_by_source(model, data, config, dist, autocast, objective)
    overall = losses.pop("all", None)
    return {"eval_loss": overall, **({"eval_loss_by_source": losses} if losses else {})}


def planned_trained_tokens(plan: BatchPlan, data: TokenizedSet, micro_batches: int) -> int:
    """Target tokens the first `micro_batches` micro-batches train (the plan is deterministic, so resumes agree)."""
    per_row = data.trained_per_row
    return int(sum(per_row[plan.micro_batch(k)[1]].sum() for k in range(micro_batches)))


def _perplexity(loss: float | None) -> float | None:
    return None if loss is None else math.exp(min(loss, 700.0))


def _source_means(records: list[dict[str, Any]]) -> dict[str, float]:
    """Token-weighted mean train loss per source over every logged step."""
    sums: dict[str, list[float]] = {}
    for record in records:
        for name, entry in record.get("by_source", {}).items():
            total = sums.setdefault(name, [0.0, 0])
            total[0] += entry["loss"] * entry["trained_tokens"]
            total[1] += entry["trained_tokens"]
    return {name: loss / trained for name, (loss, trained) in sums.items() if trained}


def _last(log: JsonLog | None, key: str) -> float | None:
    values = [r[key] for r in (log.records if log else []) if r.get(key) is not None]
    return values[-1] if values else None


def _first(log: JsonLog | None, key: str) -> float | None:
    values = [r[key] for r in (log.records if log else []) if r.get(key) is not None]
    return values[0] if values else None
