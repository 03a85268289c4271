"""Continued pre-training on a real domain corpus: held-out perplexity before/after, tokens/s.

The corpus is built at run time: the Debian Reference (package `debian-reference-en`, fetched
with `apt-get download` by bench/debian.py) goes through `instruct build` (HTML extraction and
exact dedup) into DOCUMENT shards; its chapters are cut at paragraph boundaries into sections of
about `--section-chars` characters, one document each. `instruct tune trainer/pretrain.yaml`
(the shipped recipe, LoRA) then trains on them; whole sections are held out by id hash. The
baseline, measured in the same run, is the base model's perplexity on the same held-out text.

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
    rows = [("documents (sections) trained", f"{result.documents}"), ("windows", f"{result.windows}"),
            ("tokens trained", f"{result.tokens_trained:,}"), ("held-out windows", f"{result.eval_examples}"),
            ("held-out perplexity, base model", f"{result.initial_eval_perplexity:.3f}"),
            (f"held-out perplexity, after {result.steps} steps", f"{result.eval_perplexity:.3f}"),
            ("ratio after / base", f"{result.eval_perplexity / result.initial_eval_perplexity:.3f}x"),
            ("training tokens/s", f"{result.tokens_per_second:.0f}"), ("peak RSS MB", f"{result.peak_rss_mb:.0f}")]
    print(f"continued pre-training, trainer/pretrain.yaml (LoRA), SmolLM2-135M-Instruct, Debian Reference, "
          f"max_length {args.max_length}, {args.micro_batch_tokens} tokens per step")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
