"""DPO: `instruct tune` (data.objective=dpo) vs TRL's DPOTrainer on SmolLM2-135M-Instruct: tokens/s and peak RSS.

Same pairs (real stdlib docstrings as chosen, the same words shuffled as rejected), same LoRA
(r=16, alpha=32, all-linear, dropout 0), beta 0.1, lr, steps, pairs per step and max length,
fp32. Each side runs in its own subprocess, so peak RSS is its own; tokens/s counts the tokens
of chosen + rejected sequences trained per second of the training loop (model load excluded).
TRL keeps its defaults otherwise (padded batches; its reference log-probs from the base with
the adapter disabled, as ours).

    python bench/align_bench.py [--pairs 64] [--batch 8] [--steps 8] [--max-length 256] [--threads N] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INSTRUCT_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_pairs(path: Path, count: int) -> Path:
    from instruct.corpus import stdlib_docstrings

    rng = random.Random(0)
    rows = []
    for name, doc in (d for d in stdlib_docstrings(limit=4000) if len(d[1]) > 200):
        words = doc[:600].split()
        shuffled = words[:]
        rng.shuffle(shuffled)
        rows.append({"prompt": f"Explain `{name}` from the Python standard library.", "chosen": " ".join(words),
                     "rejected": " ".join(shuffled)})
        if len(rows) == count:
            break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_ours(args: argparse.Namespace, data: Path, work: Path) -> dict:
    from instruct.tune import load_config, train

    budget = args.batch * 2 * args.max_length  # the token budget that holds `batch` pairs of max length
    config = load_config(None, [f"data.max_length={args.max_length}", f"train.micro_batch_tokens={budget}",
                                "train.grad_accum=1", "train.lr=5e-5", "train.warmup_steps=0", "method.dropout=0.0",
                                "method.r=16", "method.alpha=32", "train.eval_every=100000", "train.save_every=100000",
                                "data.cache=false", "train.dtype=fp32", "data.eval_fraction=0", "data.objective=dpo",
                                f"train.max_steps={args.steps}", "method.beta=0.1"],
                         {"data.path": str(data), "output": str(work / "ours"), "model": args.model})
    result = train(config, show_progress=False)
    # tokens as TRL counts them (prompt + chosen, prompt + rejected), though ours packs each prompt once
    pairs = [json.loads(line) for line in data.read_text().splitlines()]
    lengths = pair_sequence_tokens(pairs, result.output)
    tokens = sum(lengths[i % len(lengths)] for i in range(args.batch * args.steps))
    return {"tokens_per_s": tokens / result.training_seconds, "pairs_per_s": args.batch * args.steps /
            result.training_seconds, "peak_rss_mb": result.peak_rss_mb}


def pair_sequence_tokens(pairs: list[dict], output: str) -> list[int]:
    """Tokens of prompt + chosen plus prompt + rejected per pair, under the tokenizer and template ours used."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output)

    def length(prompt: str, answer: str) -> int:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return len(tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"])

    return [length(p["prompt"], p["chosen"]) + length(p["prompt"], p["rejected"]) for p in pairs]


def run_trl(args: argparse.Namespace, data: Path, work: Path) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from instruct.models import resolve_model
    from instruct.tune.report import peak_rss_mb

    folder = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                           "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                           "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    seen = {"tokens": 0, "seconds": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            seen["seconds"] += time.perf_counter() - self.started

    config = DPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=args.batch, max_steps=args.steps,
                       learning_rate=5e-5, beta=0.1, max_length=2 * args.max_length, report_to="none",
                       save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0,
                       warmup_steps=0, dataset_num_proc=1)
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"), callbacks=[Clock()])
    processed = trainer.train_dataset
    lengths = [len(r["prompt_ids"]) * 2 + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in processed]
    trainer.train()
    trained_pairs = min(len(lengths), args.batch * args.steps)
    tokens = sum(lengths[:trained_pairs]) * (args.batch * args.steps) / max(1, trained_pairs)
    return {"tokens_per_s": tokens / max(seen["seconds"], 1e-9), "pairs_per_s": args.batch * args.steps /
            max(seen["seconds"], 1e-9), "peak_rss_mb": peak_rss_mb()}


def child(args: argparse.Namespace, variant: str, work: Path) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--work", str(work), "--pairs", str(args.pairs),
               "--batch", str(args.batch), "--steps", str(args.steps), "--max-length", str(args.max_length)]
    command += ["--model", args.model] if args.model else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.threads else os.environ
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", default=None, help="HF folder (default: the embedded SmolLM2)")
    parser.add_argument("--child")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        work = Path(args.work)
        runner = run_ours if args.child == "ours" else run_trl
        print(json.dumps(runner(args, work / "pairs.jsonl", work)))
        return
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_pairs(work / "pairs.jsonl", args.pairs)
        trl = child(args, "trl", work)
        ours = child(args, "ours", work)
    print(f"DPO, {args.model or 'SmolLM2-135M-Instruct'}, LoRA r=16, {args.steps} steps x {args.batch} pairs, max_length {args.max_length}")
    print(f"{'trainer':28s} {'tokens/s':>10s} {'pairs/s':>8s} {'peak RSS MB':>12s}")
    for name, row in (("TRL 1.16 DPOTrainer", trl), ("instruct tune (dpo)", ours)):
        print(f"{name:28s} {row['tokens_per_s']:10.0f} {row['pairs_per_s']:8.2f} {row['peak_rss_mb']:12.0f}")
    print(f"ratio: {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x tokens/s at "
          f"{ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}x memory (tokens counted as TRL does: the prompt in both "
          "sequences)")


if __name__ == "__main__":
    main()
