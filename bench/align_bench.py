"""DPO: `instruct tune` (data.objective=dpo) vs TRL's DPOTrainer on SmolLM2-135M-Instruct: tokens/s and peak RSS.

Same pairs (real stdlib docstrings as chosen, the same words shuffled as rejected), same LoRA
(r=16, alpha=32, all-linear, dropout 0), beta 0.1, lr and max length; each side trains one epoch
over the same `--batch x --steps` pairs (TRL in steps of `--batch`). Each row runs in its own
subprocess, so peak RSS is its own; tokens/s counts the tokens of prompt + chosen and prompt +
rejected sequences trained per second of the training loop (model load excluded), as TRL feeds
them, though ours packs each prompt once. TRL keeps its defaults otherwise (padded batches; its
reference log-probs from the base with the adapter disabled, as ours). Rows (`--rows`):

    trl         TRL, fp32
    trl-bf16    TRL, bf16=True on a bf16-loaded base (its usual bf16 setup)
    ours        instruct, fp32; the memory plan picks micro-batch, checkpointing and step size
    ours-bf16   instruct, train.dtype=auto (bf16 autocast on AVX512-BF16/AMX CPUs, a bf16 base)
    ours-fixed  instruct, fp32 with a fixed `batch x 2 x max_length` micro-batch and no accumulation
    recipe      instruct with trainer/dpo.yaml as shipped (only data, model and one epoch set)

Each `ours*`/`recipe` row's ratio is against the TRL row of its precision in the same run
(trl-bf16 for bf16 rows when it ran, else trl).

    python bench/align_bench.py [--rows trl,ours] [--batch 8] [--steps 8] [--max-length 256] [--threads N] [--model DIR]
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


OURS = {"ours": ["train.dtype=fp32"], "ours-bf16": ["train.dtype=auto"],
        "ours-fixed": ["train.dtype=fp32", "train.grad_accum=1"]}  # + the fixed micro-batch, below
RECIPE = Path(__file__).resolve().parents[1] / "trainer" / "dpo.yaml"
ROWS = ("trl", "trl-bf16", *OURS, "recipe")


def run_ours(args: argparse.Namespace, data: Path, work: Path, row: str) -> dict:
    from instruct.tune import load_config, train

    common = ["train.epochs=1", "train.eval_every=100000", "train.save_every=100000", "data.cache=false",
              "data.eval_fraction=0", "data.objective=dpo"]
    if row == "recipe":
        config = load_config(str(RECIPE), common, {"data.path": str(data), "output": str(work / row), "model": args.model})
    else:
        fixed = [f"train.micro_batch_tokens={args.batch * 2 * args.max_length}"] if row == "ours-fixed" else []
        config = load_config(None, common + OURS[row] + fixed + [
            f"data.max_length={args.max_length}", "train.lr=5e-5", "train.warmup_steps=0", "method.dropout=0.0",
            "method.r=16", "method.alpha=32", "method.beta=0.1"],
            {"data.path": str(data), "output": str(work / row), "model": args.model})
    result = train(config, show_progress=False)
    pairs = sum(r["trained_tokens"] for r in result.log if "loss" in r)  # a DPO step's trained units are pairs
    lengths = pair_sequence_tokens([json.loads(line) for line in data.read_text().splitlines()], result.output)
    plan = result.plan
    return {"tokens_per_s": pairs * sum(lengths) / len(lengths) / result.training_seconds,
            "pairs_per_s": pairs / result.training_seconds, "peak_rss_mb": result.peak_rss_mb,
            "pairs_per_step": pairs / result.steps, "micro_batch_tokens": plan["micro_batch_tokens"],
            "checkpointing": plan["memory"]["grad_checkpointing"], "dtype": plan["dtype"],
            "estimate_mb": plan["memory"]["estimate"] / 2 ** 20}


def pair_sequence_tokens(pairs: list[dict], output: str) -> list[int]:
    """Tokens of prompt + chosen plus prompt + rejected per pair, under the tokenizer and template ours used."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output)

    def length(prompt: str, answer: str) -> int:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return len(tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"])

    return [length(p["prompt"], p["chosen"]) + length(p["prompt"], p["rejected"]) for p in pairs]


def run_trl(args: argparse.Namespace, data: Path, work: Path, row: str) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from instruct.models import resolve_model
    from instruct.tune.report import peak_rss_mb

    bf16 = row == "trl-bf16"
    folder = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if bf16 else torch.float32)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                           "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                           "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    seen = {"seconds": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            seen["seconds"] += time.perf_counter() - self.started

    config = DPOConfig(output_dir=str(work / row), per_device_train_batch_size=args.batch, max_steps=args.steps,
                       learning_rate=5e-5, beta=0.1, max_length=2 * args.max_length, report_to="none",
                       save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0,
                       warmup_steps=0, dataset_num_proc=1, bf16=bf16)
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"), callbacks=[Clock()])
    lengths = [len(r["prompt_ids"]) * 2 + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trainer.train_dataset]
    trainer.train()
    pairs, seconds = args.batch * args.steps, max(seen["seconds"], 1e-9)
    return {"tokens_per_s": pairs * sum(lengths) / len(lengths) / seconds, "pairs_per_s": pairs / seconds,
            "peak_rss_mb": peak_rss_mb(), "pairs_per_step": args.batch, "micro_batch_tokens": None,
            "checkpointing": False, "dtype": "bfloat16" if bf16 else "float32"}


def child(args: argparse.Namespace, row: str, work: Path) -> dict:
    command = [sys.executable, __file__, "--child", row, "--work", str(work), "--batch", str(args.batch),
               "--steps", str(args.steps), "--max-length", str(args.max_length)]
    command += ["--model", args.model] if args.model else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.threads else os.environ
    load = os.getloadavg()[0]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{row} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": (load, os.getloadavg()[0])}


def report(args: argparse.Namespace, results: dict[str, dict]) -> None:
    print(f"DPO, {args.model or 'SmolLM2-135M-Instruct'}, LoRA r=16, one epoch of {args.batch * args.steps} pairs "
          f"(TRL: {args.steps} steps x {args.batch}), max_length {args.max_length}, threads {args.threads or 'default'}")
    print(f"{'row':11s} {'dtype':9s} {'pairs/step':>10s} {'micro':>6s} {'ckpt':>5s} {'tokens/s':>9s} {'pairs/s':>8s} "
          f"{'peak RSS MB':>12s} {'plan MB':>8s} {'vs TRL':>17s} {'load':>10s}")
    for name, row in results.items():
        peer = results.get("trl-bf16" if row["dtype"] == "bfloat16" and "trl-bf16" in results else "trl")
        ratio = (f"{row['tokens_per_s'] / peer['tokens_per_s']:.2f}x @ {row['peak_rss_mb'] / peer['peak_rss_mb']:.2f}x"
                 if peer is not None and not name.startswith("trl") else "")
        estimate = f"{row['estimate_mb']:.0f}" if "estimate_mb" in row else "-"
        print(f"{name:11s} {row['dtype']:9s} {row['pairs_per_step']:10.1f} {row['micro_batch_tokens'] or '-':>6} "
              f"{'on' if row['checkpointing'] else 'off':>5s} {row['tokens_per_s']:9.0f} {row['pairs_per_s']:8.3f} "
              f"{row['peak_rss_mb']:12.0f} {estimate:>8s} {ratio:>17s} "
              f"{row['load'][0]:4.1f}-{row['load'][1]:<4.1f}")
    print("vs TRL: tokens/s ratio @ peak RSS ratio (tokens counted as TRL feeds them: the prompt in both sequences); "
          "plan MB: the memory plan's estimate; load: 1-minute load average before-after the row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="trl,ours", help="comma-separated: " + ", ".join(ROWS))
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
        runner = run_trl if args.child.startswith("trl") else run_ours
        print(json.dumps(runner(args, work / "pairs.jsonl", work, args.child)))
        return
    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)} (choose from {', '.join(ROWS)})")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_pairs(work / "pairs.jsonl", args.batch * args.steps)
        results = {row: child(args, row, work) for row in rows}
    report(args, results)


if __name__ == "__main__":
    main()
