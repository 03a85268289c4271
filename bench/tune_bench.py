"""`instruct tune` vs the naive stack on SmolLM2-135M-Instruct: tokens/s, peak RSS, eval loss after one epoch.

Naive stack: transformers Trainer + peft LoRA, batches padded to the longest example (the labels
use instruct's masks, so both optimise the same objective). Then instruct's loop as a cumulative
ladder, each rung adding one optimisation; every rung but the last runs the step as one micro-batch
(TRL's), the last lets the memory plan split the same tokens per step. Every variant runs in its own subprocess (so peak RSS
is its own), one after another, on the same examples (real stdlib docstrings as Q/A), the same
LoRA (r=16, alpha=32, all-linear, dropout 0), lr, one epoch; the eval loss is the mean
cross-entropy per answer token on the same held-out examples, computed the same way for all.
The peer a user would pick is TRL's `SFTTrainer` (packing + padding_free + completion-only loss,
the same tokens per step); `--dtype bf16` runs every variant under bf16 autocast, `--long` uses
answers of ~500+ tokens. MFU: tokens/s x model FLOPs per token (4 x matmul parameters: forward
and input gradients of a frozen base; attention excluded) over a GEMM peak measured in this run.

    python bench/tune_bench.py [--examples 48] [--batch 8] [--max-length 320] [--threads N] [--repeat 3]
                               [--dtype fp32|bf16] [--long] [--only naive,trl,0,3,5]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INSTRUCT_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# rung name -> recipe overrides (cumulative: each adds one optimisation to the one before)
LADDER = [
    ("ours: padded to longest", ["data.pack=false", "train.attn_implementation=sdpa"]),
    ("+ padding-free packing (block-diagonal mask)", ["train.attn_implementation=sdpa",
                                                      "train.trained_logits_only=false"]),
    ("+ packed_sdpa (causal kernel per example)", ["train.attn_implementation=packed_sdpa",
                                                   "train.trained_logits_only=false"]),
    ("+ LM head on trained tokens only", []),
    ("+ gradient checkpointing", ["train.grad_checkpointing=true"]),
    ("defaults: checkpointing as the memory plan says", ["train.grad_checkpointing=null"]),
    ("defaults: the plan splits each step into micro-batches", ["train.grad_checkpointing=null",
                                                                "train.micro_batch_tokens=null", "train.grad_accum=null",
                                                                "train.tokens_per_step={step_tokens}"]),
]


def write_data(folder: Path, examples: int, evals: int, long: bool) -> tuple[Path, Path]:
    from instruct.corpus import stdlib_docstrings

    docs = [d for d in stdlib_docstrings(limit=6000) if len(d[1]) > (1600 if long else 80)]
    rows = [{"id": f"d{i}", "messages": [{"role": "user", "content": f"Explain `{name}` from the Python standard library."},
                                         {"role": "assistant", "content": doc[:3000 if long else 900]}]}
            for i, (name, doc) in enumerate(docs[: examples + evals])]
    train, held = folder / "train.jsonl", folder / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:examples]))
    held.write_text("".join(json.dumps(r) + "\n" for r in rows[examples:]))
    return train, held


def config_for(args: argparse.Namespace, data: Path, held: Path, output: Path, extra: list[str]):
    from instruct.tune import load_config

    base = [f"data.max_length={args.max_length}", f"train.micro_batch_tokens={args.batch * args.mean_tokens}",
            "train.grad_accum=1", "train.lr=2e-4", "train.warmup_steps=0", "train.min_lr_ratio=0.0", "train.epochs=1", "method.name=lora",
            "method.dropout=0.0", "method.r=16", "method.alpha=32", "train.eval_every=100000",
            "train.save_every=100000", "data.cache=false", f"train.dtype={args.dtype}"]
    extra = [override.format(step_tokens=args.batch * args.mean_tokens) for override in extra]
    return load_config(None, base + extra, {"data.path": str(data), "data.eval_path": str(held), "output": str(output)})


def run_ours(args: argparse.Namespace, data: Path, held: Path, extra: list[str]) -> dict:
    from instruct.tune import train

    with tempfile.TemporaryDirectory() as out:
        result = train(config_for(args, data, held, Path(out), extra), show_progress=False)
    return {"tokens_per_s": result.tokens_per_second, "peak_rss_mb": result.peak_rss_mb, "eval_loss": result.eval_loss,
            "steps": result.steps}


def run_naive(args: argparse.Namespace, data: Path, held: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from instruct.models import resolve_model
    from instruct.tune.data import load_examples, tokenize_example, tokenize_table
    from instruct.tune.loop import Distributed, evaluate
    from instruct.tune.report import peak_rss_mb

    folder = resolve_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    features = []
    for messages in load_examples(data).column("messages").to_pylist():
        input_ids, labels = tokenize_example(tokenizer, messages)
        if len(input_ids) <= args.max_length:  # the same drop policy as ours
            features.append({"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels})
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch, num_train_epochs=1,
                                     learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0,
                                     max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
                                     use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False, seed=0,
                                     disable_tqdm=True)
        trainer = Trainer(model=model, args=training, train_dataset=features,
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100))
        started = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - started
    config = config_for(args, data, held, Path("unused"), ["data.pack=false", "train.attn_implementation=sdpa"])
    eval_set = tokenize_table(load_examples(held), tokenizer, args.max_length, "drop", None)
    eval_loss = evaluate(model, eval_set, config, Distributed(), contextlib.nullcontext)
    return {"tokens_per_s": sum(len(f["input_ids"]) for f in features) / elapsed, "peak_rss_mb": peak_rss_mb(),
            "eval_loss": eval_loss, "steps": trainer.state.global_step}


def run_trl(args: argparse.Namespace, data: Path, held: Path) -> dict:
    """TRL SFTTrainer as its docs recommend for speed: packing + padding_free, loss on completions only."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from instruct.models import resolve_model
    from instruct.tune.data import load_examples, tokenize_table
    from instruct.tune.loop import Distributed, evaluate
    from instruct.tune.report import peak_rss_mb

    folder = resolve_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    rows = [{"prompt": m[:-1], "completion": m[-1:]} for m in load_examples(data).column("messages").to_pylist()]
    step_tokens = args.batch * args.mean_tokens
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, max_length=step_tokens, packing=True, padding_free=True,
                           completion_only_loss=True, per_device_train_batch_size=1, num_train_epochs=1,
                           learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0,
                           max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                           bf16=args.dtype == "bf16", gradient_checkpointing=False, seed=0, disable_tqdm=True,
                           dataloader_num_workers=0)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                    task_type="CAUSAL_LM"))
        tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
        started = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - started
    config = config_for(args, data, held, Path("unused"), [])
    eval_set = tokenize_table(load_examples(held), tokenizer, args.max_length, "drop", None)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.dtype == "bf16" else contextlib.nullcontext
    eval_loss = evaluate(trainer.model, eval_set, config, Distributed(), autocast)
    return {"tokens_per_s": tokens / elapsed, "peak_rss_mb": peak_rss_mb(), "eval_loss": eval_loss,
            "steps": trainer.state.global_step}


def gemm_peak(dtype_name: str, size: int = 2048, repeat: int = 5) -> float:
    """Best-of-`repeat` GFLOP/s of one square matmul in this dtype on this machine."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def flops_per_token() -> float:
    """4 x matmul parameters (embedding lookups excluded, the tied LM head included)."""
    import json as _json

    from instruct.models import resolve_model

    c = _json.loads((Path(resolve_model()) / "config.json").read_text())
    h, i, layers, heads, kv = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                               c["num_attention_heads"], c["num_key_value_heads"])
    head_dim = c.get("head_dim") or h // heads
    per_layer = h * heads * head_dim * 2 + h * kv * head_dim * 2 + 3 * h * i
    return 4 * (layers * per_layer + c["vocab_size"] * h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--eval-examples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8, help="examples per optimizer step (naive); ours: batch x mean tokens")
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all variants; the best round is reported")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--long", action="store_true", help="answers of ~500+ tokens (use --max-length 1024)")
    parser.add_argument("--only", default=None, help="comma-separated variants: naive, trl, ladder indices")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--mean-tokens", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.variant is not None:  # child process: run one variant, print its JSON
        work = Path(args.workdir)
        data, held = work / "train.jsonl", work / "eval.jsonl"
        if args.variant == "naive":
            measured = run_naive(args, data, held)
        elif args.variant == "trl":
            measured = run_trl(args, data, held)
        else:
            measured = run_ours(args, data, held, LADDER[int(args.variant)][1])
        print("RESULT " + json.dumps(measured))
        return
    with tempfile.TemporaryDirectory() as work:
        data, held = write_data(Path(work), args.examples, args.eval_examples, args.long)
        args.mean_tokens = mean_tokens(data, args.max_length)
        names = ["naive: HF Trainer + peft LoRA, pad to longest", "TRL SFTTrainer: packing+padding_free+completion"]
        names += [name for name, _ in LADDER]
        variants = ["naive", "trl"] + [str(index) for index in range(len(LADDER))]
        if args.only:
            keep = args.only.split(",")
            names, variants = zip(*[(n, v) for n, v in zip(names, variants) if v in keep])
        best: dict[str, dict] = {}
        for _ in range(args.repeat):  # round-robin, best of N: a busy machine slows runs, it never speeds them up
            for variant in variants:
                measured = child(args, variant, work)
                if variant not in best or measured["tokens_per_s"] > best[variant]["tokens_per_s"]:
                    best[variant] = measured
    peak = gemm_peak(args.dtype)
    print_table(args, [(name, best[v]) for name, v in zip(names, variants)], peak, flops_per_token())


def mean_tokens(data: Path, max_length: int) -> int:
    from transformers import AutoTokenizer

    from instruct.models import resolve_model
    from instruct.tune.data import load_examples, tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    lengths = [min(max_length, len(tokenize_example(tokenizer, m)[0])) for m in load_examples(data).column("messages").to_pylist()]
    return max(1, round(sum(lengths) / len(lengths)))


def child(args: argparse.Namespace, variant: str, work: str) -> dict:
    command = [sys.executable, __file__, "--variant", variant, "--workdir", work, "--examples", str(args.examples),
               "--batch", str(args.batch), "--max-length", str(args.max_length), "--mean-tokens", str(args.mean_tokens),
               "--dtype", args.dtype]
    if args.threads:
        command += ["--threads", str(args.threads)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"variant {variant} failed:\n{done.stderr[-3000:]}")
    measured = json.loads(lines[-1][len("RESULT "):])
    measured["wall_s"] = time.perf_counter() - started
    print(f"  {variant}: {measured}", file=sys.stderr)
    return measured


def print_table(args: argparse.Namespace, rows: list[tuple[str, dict]], peak: float, flops: float) -> None:
    base_name, base = next(((n, m) for n, m in rows if n.startswith("TRL")), rows[0])
    print(f"\nSmolLM2-135M-Instruct, LoRA r=16 all-linear, {args.dtype} CPU, {args.examples} train / "
          f"{args.eval_examples} eval examples (mean {args.mean_tokens} tokens), max_length {args.max_length}, "
          f"{args.batch} examples (naive) or {args.batch * args.mean_tokens} tokens per step, 1 epoch, torch threads "
          f"{args.threads or 'default'}, best of {args.repeat}; {args.dtype} GEMM peak {peak:.0f} GFLOP/s (measured); "
          f"ratios against {base_name.split(':')[0]}")
    print(f"{'variant':50} {'tokens/s':>9} {'x base':>7} {'peak RSS MB':>12} {'x base':>7} {'eval loss':>10} {'MFU':>6}")
    for name, m in rows:
        mfu = m["tokens_per_s"] * flops / (peak * 1e9)
        print(f"{name:50} {m['tokens_per_s']:9.1f} {m['tokens_per_s'] / base['tokens_per_s']:7.2f} "
              f"{m['peak_rss_mb']:12.0f} {m['peak_rss_mb'] / base['peak_rss_mb']:7.2f} {m['eval_loss']:10.4f} "
              f"{mfu:6.1%}")


if __name__ == "__main__":
    main()
