"""Every fine-tuning method on one real task, one data set and one step budget, side by side.

The task is the Unicode-category classification of `examples/unicode_category/` (a character's
name -> its general category; templated, decontaminated splits from Python's own Unicode
database). Each method trains SmolLM2-135M-Instruct for the same number of optimizer steps on
the same micro-batches (its recipe's learning rate, `trainer/<method>.yaml`), in its own
subprocess so its peak RSS is its own; then `instruct eval` scores held-out accuracy by rank
classification against the untuned base, measured in the same run.

    python bench/peft_bench.py [--steps 20] [--eval-items 150] [--methods lora,houlsby,...] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["full", "freeze", "layerwise_unfreeze", "bitfit", "lora", "dora", "rslora", "lora_plus", "pissa",
           "adalora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning", "houlsby", "pfeiffer",
           "parallel_adapter", "unipelt"]
COMMON = ["train.micro_batch_tokens=1024", "train.grad_accum=1", "data.max_length=512", "train.eval_every=100000",
          "train.save_every=100000", "data.max_eval_examples=60"]
EXTRA = {"bitfit": ["method.include_norms=true"],  # Llama has no biases: BitFit trains the norms too
         "adalora": ["method.tinit=2", "method.tfinal=2"]}  # the recipe's 10 + 10 leave no room in a short run


def run(command: list[str]) -> None:
    env = {**os.environ, "INSTRUCT_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")


def build_task(work: Path) -> dict[str, Path]:
    """The example's splits, built by its own recipes (they read data/generated/unicode_category)."""
    data = ROOT / "data" / "generated" / "unicode_category"
    run([sys.executable, "-m", "instruct.labeled_samples", "--output", str(data)])
    recipe = ROOT / "examples" / "unicode_category"
    splits = {"train": work / "train", "validation": work / "validation", "test": work / "test"}
    run([sys.executable, "-m", "instruct", "build", str(recipe / "train.yaml"), "--output", str(splits["train"])])
    for split in ("validation", "test"):
        run([sys.executable, "-m", "instruct", "build", str(recipe / "heldout.yaml"), "--input",
             str(data / f"{split}.jsonl"), "--output", str(splits[split])])
    return splits


def tune(method: str, splits: dict[str, Path], out: Path, steps: int, threads: int) -> dict:
    recipe = ROOT / "trainer" / f"{method}.yaml"
    run([sys.executable, "-m", "instruct", "tune", str(recipe), "--data", str(splits["train"]), "--output",
         str(out), "--max-steps", str(steps), f"data.eval_path={splits['validation']}", *COMMON,
         f"train.threads={threads}", *EXTRA.get(method, [])])
    return json.loads((out / "result.json").read_text())


def accuracy(adapter: Path | None, examples: list[dict]) -> float:
    """Rank-classification accuracy of the base (adapter None) or a tuned folder, through instruct's eval."""
    from instruct.evaluate import EvalConfig, evaluate_model
    from instruct.tune import load_model

    config = EvalConfig(data="", output="")
    model, tokenizer = load_model(adapter=adapter, dtype="fp32")
    return float(evaluate_model(model, tokenizer, examples, config).per_item["accuracy"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-items", type=int, default=150)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every run (1 on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="peft-bench-") as tmp:
        work = Path(tmp)
        splits = build_task(work)
        from instruct.io.examples import load_examples

        test = load_examples(splits["test"])[: args.eval_items]
        base = accuracy(None, test)
        print(f"{args.steps} optimizer steps of <= 1,024 tokens each, SmolLM2-135M-Instruct, Unicode-category task, "
              f"{args.threads} torch thread(s), accuracy on {len(test)} test items; the untuned base scores "
              f"{100 * base:.1f} % (same run)\n")
        print("| method | trainable params | % of model | tokens/s | peak RSS (MB) | eval loss before -> after "
              "| accuracy base -> tuned |")
        print("|---|---:|---:|---:|---:|---|---|", flush=True)
        for method in args.methods.split(","):  # a row as each method finishes: a long run is useful when cut short
            r = tune(method, splits, work / method, args.steps, args.threads)
            tuned = accuracy(work / method, test)
            share = 100 * r["trainable_parameters"] / r["total_parameters"]
            print(f"| {method} | {r['trainable_parameters']:,} | {share:.3f} | {r['tokens_per_second']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} | {r['initial_eval_loss']:.3f} -> {r['eval_loss']:.3f} | "
                  f"{100 * base:.1f} -> {100 * tuned:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
