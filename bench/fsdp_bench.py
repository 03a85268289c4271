"""Per-process peak memory of FSDP vs DDP: full fine-tuning of the embedded SmolLM2-135M on 2 processes.

DDP keeps on every process the whole model, its gradients (plus DDP's gradient buckets) and both
AdamW moments; FSDP (`train.fsdp=true`) keeps 1/N of each plus the block being computed. Both runs
are the same `instruct tune` command under `torchrun --standalone --nproc_per_node 2` (gloo on
CPU), with the same data, steps, micro-batch and dtype, differing only in `train.fsdp`; each
process's peak RSS (ru_maxrss, the whole run: model load, sharding, steps, checkpoint, gathering
the final model) comes from DIR/result.json (`peak_rss_mb_per_process`), and the loss of each
step is printed beside it (the two must agree).

    python bench/fsdp_bench.py [--steps 3] [--engines ddp fsdp] [--max-length 512]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_data(folder: Path, count: int) -> Path:
    """`count` chat examples from stdlib docstrings (real prose), as one EXAMPLE shard."""
    from instruct.corpus import stdlib_docstrings
    from instruct.io.shards import write_table
    from instruct.schema import examples_table

    rows = [{"id": f"ex{i}", "messages": [{"role": "user", "content": f"What does {name} do?"},
                                          {"role": "assistant", "content": doc[:1200]}],
             "source": "bench", "meta": "{}"}
            for i, (name, doc) in enumerate(stdlib_docstrings(limit=count))]
    folder.mkdir(parents=True, exist_ok=True)
    write_table(examples_table(rows), folder / "part-0000.arrow")
    return folder


def run(engine: str, data: Path, output: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "instruct", "tune", "--data", str(data), "--output", str(output), "--max-steps", str(args.steps),
               "method.name=full", f"data.max_length={args.max_length}",
               f"train.micro_batch_tokens={args.max_length * 2}", "train.grad_accum=1",
               "train.grad_checkpointing=false", "train.threads=1", "data.eval_fraction=0",
               f"train.save_every={args.steps}", *(["train.fsdp=true"] if engine == "fsdp" else [])]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "INSTRUCT_NO_PROGRESS": "1"})
    if done.returncode:
        sys.exit(f"{engine}: failed\n{done.stderr[-3000:]}")
    result = json.loads((output / "result.json").read_text())
    losses = [json.loads(line)["loss"] for line in (output / "train_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    return {"engine": engine, "seconds": time.perf_counter() - started, "peaks": result["peak_rss_mb_per_process"],
            "tokens_per_s": result["tokens_per_second"], "losses": losses, "dtype": result["plan"]["dtype"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["ddp", "fsdp"], choices=["ddp", "fsdp"])
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--examples", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.examples)
        rows = [run(engine, data, Path(tmp) / engine, args) for engine in args.engines]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.steps} steps, {args.max_length * 2}-token micro-batches, "
          f"1 per process per step, {rows[0]['dtype']}")
    print("| engine | peak RSS MB rank 0 | peak RSS MB rank 1 | tokens/s | wall s | losses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['engine']} | {row['peaks'][0]:,.0f} | {row['peaks'][1]:,.0f} | {row['tokens_per_s']:.0f} | "
              f"{row['seconds']:.0f} | {' '.join(f'{x:.4f}' for x in row['losses'])} |")


if __name__ == "__main__":
    main()
