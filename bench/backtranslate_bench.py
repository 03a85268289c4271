"""Instruction back-translation yield with the embedded model on a real DOCUMENT corpus built at run time.

    python bench/backtranslate_bench.py [--documents 12] [--sample 3] [--model HF_FOLDER]

`instruct samples` writes the long prose topics of this Python's `pydoc_data` (the language reference) as
books; `pipelines/books.yaml` curates them into DOCUMENT shards; the first D documents go through
`instruct synth --method backtranslate` with the defaults (one passage per document to bound the time),
the embedded SmolLM2-135M-Instruct served locally writing instructions and scoring them. Printed: passages,
candidates, kept at the default threshold (4) and, from the same scores, at thresholds 1-5 (the curation's
selectivity against keeping everything), time per candidate, and a sample of kept pairs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instruct.io.shards import read_shards, write_table  # noqa: E402
from instruct.schema import load_meta  # noqa: E402


def instruct(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "instruct", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=12)
    parser.add_argument("--sample", type=int, default=3)
    parser.add_argument("--model", help="serve this model instead of the embedded SmolLM2 (e.g. a tiny one to test the bench)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        instruct("samples", "--output", str(work / "samples"))
        instruct("build", "pipelines/books.yaml", "--input", str(work / "samples" / "books"),
                 "--output", str(work / "books"))
        documents = read_shards(work / "books").slice(0, args.documents)
        write_table(documents, work / "subset" / "shards" / "part-0000.arrow")
        started = time.perf_counter()
        instruct("synth", "--method", "backtranslate", "--documents", str(work / "subset"), "--num", "1000",
                 "--output", str(work / "bt"), "backtranslate.max_passages_per_document=1", "progress=false",
                 "--allow-empty",  # a yield of 0 is a result here, not an error
                 *([f"serve.model={args.model}"] if args.model else []))
        seconds = time.perf_counter() - started
        manifest = json.loads((work / "bt" / "manifest.json").read_text())
        rows = read_shards(work / "bt").to_pylist() if manifest["counts"]["written"] else []
        rejected = [json.loads(line) for line in (work / "bt" / "rejected.jsonl").read_text().splitlines()]
    stages = manifest["counts"]["stages"]
    scores = Counter(load_meta(r["meta"])["curation_score"] for r in rows)
    scores.update(r["score"] for r in rejected if r["stage"] == "curation" and r["score"] is not None)
    candidates = sum(stages.get("curation", {}).values())
    print(f"documents {len(documents)} · passages {stages['passage'].get('kept', 0)} (skipped "
          f"{ {k: v for k, v in stages['passage'].items() if k != 'kept'} }) · instructions "
          f"{dict(stages.get('instruction', {}))} · curation {dict(stages.get('curation', {}))}")
    print(f"{seconds:.0f} s for {candidates} candidates ({seconds / max(candidates, 1):.1f} s each), "
          f"{manifest['usage']['completion_tokens']:,} tokens generated")
    print("\n| threshold | kept | yield (kept / candidates) |\n| --- | --- | --- |")
    for threshold in range(1, 6):
        kept = sum(n for score, n in scores.items() if score >= threshold)
        marker = " (default)" if threshold == 4 else ""
        print(f"| {threshold}{marker} | {kept} | {kept / max(candidates, 1):.2f} |")
    print(f"\nscore histogram {dict(sorted(scores.items()))}; unparsed {stages.get('curation', {}).get('unparsed_score', 0)}")
    for record in [r for r in rejected if r.get("reason") == "unparsed_score"][:args.sample]:
        print(f"\n- unparsed judgement: {record['judgement'][:300]!r}; follow-up: {record.get('score_followup')!r}")
    for row in rows[:args.sample]:
        meta = load_meta(row["meta"])
        answer = row["messages"][1]["content"]
        print(f"\n- score {meta['curation_score']:g}, {meta['url_or_path']} [{meta['passage_start']}:"
              f"{meta['passage_end']}]\n  instruction: {row['messages'][0]['content']!r}\n"
              f"  answer: {answer[:200]!r}{'...' if len(answer) > 200 else ''}")


if __name__ == "__main__":
    main()
