"""Continued pre-training on a real domain corpus: held-out perplexity before/after, tokens/s.

The corpus is built at run time: the Debian Reference (package `debian-reference-en`, fetched
with `apt-get download` by bench/debian.py) goes through `instruct build` (HTML extraction and
exact dedup) into DOCUMENT shards; its chapters are cut at paragraph boundaries into sections of
about `--section-chars` characters, one document each. `instruct tune trainer/pretrain.yaml`
(the shipped recipe, LoRA) then trains on them; whole sections are held out by id hash.
Baselines measured in the same run: the base model's perplexity on the same held-out text, and
the peer a user would pick, transformers' `run_clm.py` recipe (documents + EOS concatenated and
cut into `max_length` blocks, attention across documents, the remainder dropped) under the
`Trainer` with the same peft LoRA, steps, lr and tokens per step, scored on the same held-out windows.

    python bench/pretrain_bench.py [--steps 16] [--max-length 512] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("INSTRUCT_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(work: Path) -> Path:
    """Debian Reference HTML -> `instruct build` DOCUMENT shards -> sections as document JSONL."""
    from debian import unpacked

    from instruct.io.shards import read_shards
    from instruct.pipeline.recipe import load_recipe
    from instruct.pipeline.runner import build

    pages = sorted(str(p) for p in unpacked("debian-reference-en").rglob("*.html"))
    recipe = {"read": {"format": "html", "paths": pages, "source": "debian-reference"},
              "steps": [{"exact_dedup": {}}], "write": {"output": str(work / "built")}}
    build(load_recipe(None, data=recipe), recipe, show_progress=False)
    return write_sections(read_shards(work / "built").to_pylist(), work / "sections.jsonl")


def write_sections(chapters: list[dict], path: Path, size: int = 4000) -> Path:
    with path.open("w", encoding="utf-8") as sink:
        for chapter in chapters:
            section, number = [], 0
            for paragraph in chapter["text"].split("\n\n"):
                section.append(paragraph)
                if sum(len(p) for p in section) >= size:
                    sink.write(json.dumps({"id": f"{chapter['id']}-{number}", "text": "\n\n".join(section)}) + "\n")
                    section, number = [], number + 1
            if section:
                sink.write(json.dumps({"id": f"{chapter['id']}-{number}", "text": "\n\n".join(section)}) + "\n")
    return path


def run_peer(config, steps: int) -> dict:
    """run_clm.py's group_texts + Trainer + peft LoRA, same budget; held-out loss by our evaluate()."""
    import contextlib
    import math
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from instruct.models import resolve_model
    from instruct.tune.documents import end_of_text_id, tokenize_document
    from instruct.tune.loop import Distributed, evaluate
    from instruct.tune.training import load_tables, prepare_data

    tables = load_tables(config)
    folder = config.model or resolve_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    method = config.method
    model = get_peft_model(model, LoraConfig(r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                                             target_modules=method.target_modules, task_type="CAUSAL_LM"))
    end, size = end_of_text_id(tokenizer), config.data.max_length
    stream = [t for text in tables[0].column("text").to_pylist() for t in tokenize_document(tokenizer, text, end)]
    blocks = [stream[i: i + size] for i in range(0, len(stream) - size + 1, size)]
    features = [{"input_ids": b, "attention_mask": [1] * size, "labels": b} for b in blocks]
    batch = config.train.micro_batch_tokens // size
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                                     learning_rate=config.train.lr, lr_scheduler_type="cosine", warmup_steps=max(1, int(0.03 * steps)),
                                     max_grad_norm=1.0, logging_strategy="no", save_strategy="no", report_to=[],
                                     use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=training, train_dataset=features, data_collator=default_data_collator)
        started = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - started
    config.data.pack, config.train.attn_implementation = False, "sdpa"
    _, eval_set = prepare_data(config, tokenizer, False, tables)
    loss = evaluate(model.eval(), eval_set, config, Distributed(), contextlib.nullcontext)
    return {"tokens_per_s": steps * batch * size / elapsed, "eval_perplexity": math.exp(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--micro-batch-tokens", type=int, default=2048)
    parser.add_argument("--eval-documents", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from instruct.tune import load_config, train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = build_corpus(work)
        overrides = [f"data.max_length={args.max_length}", f"train.micro_batch_tokens={args.micro_batch_tokens}",
                     "train.grad_accum=1", "train.lr=5e-4", "data.eval_fraction=0.05",
                     f"data.max_eval_examples={args.eval_documents}", "train.eval_every=100000",
                     "train.save_every=100000", "data.cache=false"]
        if args.threads:
            overrides.append(f"train.threads={args.threads}")
        config = load_config(ROOT / "trainer/pretrain.yaml", overrides,
                             {"data.path": str(corpus), "output": str(work / "out"), "train.max_steps": args.steps})
        result = train(config, show_progress=False)
        peer = run_peer(config, args.steps)
    rows = [("documents (sections) trained", f"{result.documents}"), ("windows", f"{result.windows}"),
            ("tokens trained", f"{result.tokens_trained:,}"), ("held-out windows", f"{result.eval_examples}"),
            ("held-out perplexity, base model", f"{result.initial_eval_perplexity:.3f}"),
            (f"held-out perplexity, after {result.steps} steps", f"{result.eval_perplexity:.3f}"),
            ("ratio after / base", f"{result.eval_perplexity / result.initial_eval_perplexity:.3f}x"),
            ("peer (run_clm blocks + Trainer): held-out perplexity after", f"{peer['eval_perplexity']:.3f}"),
            ("training tokens/s (ours)", f"{result.tokens_per_second:.0f}"),
            ("training tokens/s (peer)", f"{peer['tokens_per_s']:.0f}"),
            ("tokens/s ratio ours / peer", f"{result.tokens_per_second / peer['tokens_per_s']:.2f}x"),
            ("peak RSS MB (ours, then peer in the same process)", f"{result.peak_rss_mb:.0f}")]
    print(f"continued pre-training, trainer/pretrain.yaml (LoRA), SmolLM2-135M-Instruct, Debian Reference, "
          f"max_length {args.max_length}, {args.micro_batch_tokens} tokens per step")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
