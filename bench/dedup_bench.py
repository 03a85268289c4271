"""Near-duplicate removal benchmark: precision, recall and docs/s against naive datasketch and datatrove.

Corpus (built at run time, nothing downloaded): every Python stdlib docstring of >= 20 words and
every stdlib function/class source of 60-3000 words (>= 8k real documents, with the natural
near-duplicates such a corpus has), plus injected copies of known edit rate: exact copies; 1, 2,
5 and 10 % of words edited (replaced, deleted or inserted) scattered or in bursts; and the same
body inside another site's boilerplate. The true word-5-gram Jaccard of every copy to its
original is computed exactly.

Scoring. Each method yields, per dropped document, the document it was merged with (its cluster's
kept member). Recall: share of (original, copy) pairs with true Jaccard >= 0.7 that end in one
cluster. Precision: share of (dropped, kept) pairs that are right: the same injected family, or
true Jaccard >= 0.7 (natural duplicates of the corpus). Speed: documents per second, wall clock,
from JSONL shards to written output, with the same worker count for the parallel tools; the
fastest of --repeat runs counts for every method alike (the machine may be shared).

    python bench/dedup_bench.py [--workers 2] [--copies 1200] [--methods ours,noverify,naive,datatrove]
"""
from __future__ import annotations

import argparse
import ast
import gzip
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from instruct.corpus import stdlib_docstrings, stdlib_sources

WORD = re.compile(r"\w+")
NEAR = 0.7  # true Jaccard that makes a pair a near-duplicate (recall set, and precision for natural pairs)
SITES = [  # boilerplate of made-up sites: navigation above, footer below the same body
    ("Home | Docs | Blog | Pricing | Sign in\nYou are here: Home > Library > Reference\n",
     "\nWas this page helpful? Yes No\nCopyright 2024 Example Docs Inc. All rights reserved. Privacy | Terms | "
     "Cookie settings | Contact us"),
    ("MENU Search Products Solutions Community Support Login Register\nShare this article on social media\n",
     "\nRelated posts you may like: getting started, advanced topics, release notes\nSubscribe to our newsletter "
     "for weekly updates. Powered by ExampleCMS. Back to top"),
    ("Skip to main content\nNews Tutorials Forum Jobs Events About\nAdvertisement\n",
     "\nComments (0) Leave a reply. Your email address will not be published. Required fields are marked\n"
     "Categories: programming, python, reference. Tags: stdlib, documentation"),
]


@dataclass
class Doc:
    id: str
    text: str
    family: str  # id of the original for injected copies, else the document's own id
    kind: str = "original"  # original | exact | scattered-N% | burst-N% | boilerplate
    true_j: float = 1.0  # word-5-gram Jaccard to the original (copies only)


def shingles(text: str, n: int = 5) -> set:
    words = WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# --- corpus ------------------------------------------------------------------------------------

def base_corpus() -> list[Doc]:
    texts = [doc for _, doc in stdlib_docstrings(min_words=20)]
    for path in stdlib_sources():
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                segment = ast.get_source_segment(source, node) or ""
                if 60 <= len(segment.split()) <= 3000:
                    texts.append(segment)
    return [Doc(f"doc-{i}", text, f"doc-{i}") for i, text in enumerate(texts)]


def edit_words(text: str, rate: float, burst: bool, vocabulary: list[str], rng: random.Random) -> str:
    """Replace, delete or insert words at `rate` of the word positions, scattered or in 1-2 runs."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    k = max(1, round(rate * len(spans)))
    if burst:
        runs = 1 if k < 8 else 2
        chosen: set[int] = set()
        for size in [k - k // 2, k // 2][:runs] if runs == 2 else [k]:
            start = rng.randrange(0, max(1, len(spans) - size))
            chosen.update(range(start, min(len(spans), start + size)))
    else:
        chosen = set(rng.sample(range(len(spans)), k))
    pieces, last = [], 0
    for index, (start, end) in enumerate(spans):
        pieces.append(text[last:start])
        word = text[start:end]
        if index in chosen:
            action = rng.random()
            if action < 0.6:
                word = rng.choice(vocabulary)
            elif action < 0.8:
                word = ""
            else:
                word = f"{word} {rng.choice(vocabulary)}"
        pieces.append(word)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def inject_copies(base: list[Doc], count: int, rng: random.Random) -> list[Doc]:
    vocabulary = sorted({w for d in base[:2000] for w in WORD.findall(d.text)})
    candidates = [d for d in base if len(d.text.split()) >= 80]
    plan = [("exact", 0.0, False)] * (count // 8)
    for rate in (0.01, 0.02, 0.05, 0.10):
        plan += [(f"scattered-{rate:.0%}", rate, False)] * (count // 8)
        plan += [(f"burst-{rate:.0%}", rate, True)] * (count // 16)
    plan += [("boilerplate", 0.0, False)] * (count - len(plan))
    copies = []
    for number, (kind, rate, burst) in enumerate(plan):
        original = rng.choice(candidates)
        if kind == "exact":
            text = original.text
        elif kind == "boilerplate":
            header, footer = rng.choice(SITES)
            text = header + original.text + footer
        else:
            text = edit_words(original.text, rate, burst, vocabulary, rng)
        copies.append(Doc(f"copy-{number}", text, original.family, kind,
                          jaccard(shingles(original.text), shingles(text))))
    return copies


def write_shards(docs: list[Doc], folder: Path, shards: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    per = -(-len(docs) // shards)
    for s in range(shards):
        path = folder / f"part-{s:03d}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for doc in docs[s * per:(s + 1) * per]:
                handle.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")
        paths.append(str(path))
    return paths


# --- methods: each returns {dropped id: kept id it was merged with} ------------------------------

def run_ours(paths: list[str], out: Path, workers: int, **params) -> dict[str, str]:
    from instruct.io.readers.base import ReadConfig
    from instruct.io.shards import read_table
    from instruct.pipeline.recipe import Recipe, WriteConfig
    from instruct.pipeline.runner import build

    recipe = Recipe(read=ReadConfig(format="jsonl", paths=paths), steps=[{"minhash_dedup": params}],
                    write=WriteConfig(output=str(out), keep_rejected=False, report=False), workers=workers)
    build(recipe, show_progress=False)
    clusters = read_table(out / "minhash_dedup" / "clusters.arrow").to_pylist()
    return {row["id"]: row["cluster"] for row in clusters if not row["kept"]}


def run_naive(docs: list[Doc]) -> dict[str, str]:
    """datasketch as its README shows it: one MinHash per doc, one update per shingle, MinHashLSH."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    position = {d.id: i for i, d in enumerate(docs)}
    merged = {}
    for doc in docs:
        words = WORD.findall(doc.text.lower())
        sketch = MinHash(num_perm=128)
        for i in range(max(1, len(words) - 4)):
            sketch.update(" ".join(words[i:i + 5]).encode("utf-8"))
        found = lsh.query(sketch)
        if found:
            merged[doc.id] = min(found, key=position.__getitem__)
        else:
            lsh.insert(doc.id, sketch)
    return merged


def run_datatrove(input_folder: Path, out: Path, workers: int, tasks: int) -> dict[str, str]:
    """datatrove's 4-stage MinHash pipeline with its default config (14 buckets x 8 hashes, 5-grams).

    Its English word tokenizer needs NLTK's punkt data, which cannot be downloaded here, so it
    gets a regex word tokenizer (faster than NLTK: this favours datatrove's speed)."""
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.word_tokenizers import WordTokenizer
    from loguru import logger

    logger.remove()

    class RegexTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return WORD.findall(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [m.span() for m in WORD.finditer(text)]

    config = MinhashConfig()
    sigs = out / "sigs"
    signature = MinhashDedupSignature(str(sigs), config=config, language=RegexTokenizer())
    signature._hash_func = xxhash64_of_text  # datatrove 0.10.1 hands str to xxhash 4, which wants bytes
    logs = out / "logs"
    buckets, clusters = out / "buckets", out / "clusters"
    stage1 = LocalPipelineExecutor(
        pipeline=[JsonlReader(str(input_folder)), signature],
        tasks=tasks, workers=workers, logging_dir=str(logs / "1"), skip_completed=False)
    stage2 = LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(str(sigs), str(buckets), config=config)],
                                   tasks=config.num_buckets, workers=workers, logging_dir=str(logs / "2"),
                                   depends=stage1, skip_completed=False)
    stage3 = LocalPipelineExecutor(pipeline=[MinhashDedupCluster(str(buckets), str(clusters), config=config,
                                                                 save_cluster_id=True)],
                                   tasks=1, logging_dir=str(logs / "3"), depends=stage2, skip_completed=False)
    stage4 = LocalPipelineExecutor(
        pipeline=[JsonlReader(str(input_folder)),
                  MinhashDedupFilter(str(clusters), exclusion_writer=JsonlWriter(str(out / "removed")),
                                     load_cluster_ids=True),
                  JsonlWriter(str(out / "kept"))],
        tasks=tasks, workers=workers, logging_dir=str(logs / "4"), depends=stage3, skip_completed=False)
    stage4.run()
    kept_of_cluster, removed = {}, []
    for folder, keep in ((out / "kept", True), (out / "removed", False)):
        for path in sorted(folder.glob("*.jsonl*")):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    cluster = record["metadata"].get("minhash_cluster_id", -1)
                    if keep and cluster != -1:
                        kept_of_cluster[cluster] = record["id"]
                    elif not keep:
                        removed.append((record["id"], cluster))
    return {doc_id: kept_of_cluster[cluster] for doc_id, cluster in removed}


def xxhash64_of_text(text: str) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"))


# --- scoring -----------------------------------------------------------------------------------

def score(docs: list[Doc], merged: dict[str, str]) -> dict[str, float]:
    by_id = {d.id: d for d in docs}
    cache: dict[str, set] = {}

    def sh(doc_id: str) -> set:
        if doc_id not in cache:
            cache[doc_id] = shingles(by_id[doc_id].text)
        return cache[doc_id]

    def root(doc_id: str) -> str:
        while doc_id in merged:
            doc_id = merged[doc_id]
        return doc_id

    right = sum(1 for a, b in merged.items()
                if by_id[a].family == by_id[b].family or jaccard(sh(a), sh(b)) >= NEAR)
    positives = [d for d in docs if d.kind != "original" and d.true_j >= NEAR]
    found = sum(1 for d in positives if root(d.id) == root(d.family))
    per_kind = defaultdict(lambda: [0, 0])
    for d in docs:
        if d.kind != "original":
            per_kind[d.kind][1] += 1
            per_kind[d.kind][0] += root(d.id) == root(d.family)
    return {"precision": right / len(merged) if merged else 1.0, "recall": found / len(positives),
            "pairs": len(merged), "per_kind": dict(per_kind)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1200)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per method; the fastest counts (shared machines)")
    parser.add_argument("--methods", default="ours,noverify,naive,datatrove",
                        help="comma-separated subset of ours,noverify,naive,datatrove")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = base_corpus()
    copies = inject_copies(base, args.copies, rng)
    docs = base + copies
    rng.shuffle(docs)
    positives = sum(1 for c in copies if c.true_j >= NEAR)
    print(f"corpus: {len(base)} stdlib documents + {len(copies)} injected copies = {len(docs)} docs; "
          f"{positives} copies have true word-5-gram Jaccard >= {NEAR}")
    kinds = defaultdict(list)
    for c in copies:
        kinds[c.kind].append(c.true_j)
    print("copy kinds (true Jaccard min / mean): " + ", ".join(
        f"{k} {min(v):.2f}/{sum(v) / len(v):.2f}" for k, v in sorted(kinds.items())))

    work = Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    try:
        paths = write_shards(docs, work / "input", args.shards)
        results = []

        def timed(name: str, run) -> None:
            best = float("inf")
            for attempt in range(args.repeat):
                started = time.perf_counter()
                merged = run(attempt)
                best = min(best, time.perf_counter() - started)
            results.append((name, score(docs, merged), len(docs) / best, best))
            print(f"  done: {name} (best of {args.repeat}: {best:.1f} s)", file=sys.stderr)

        methods = args.methods.split(",")
        if "ours" in methods:
            timed(f"ours, minhash_dedup ({args.workers} workers)",
                  lambda k: run_ours(paths, work / f"ours{k}", args.workers))
        if "noverify" in methods:
            timed(f"ours, LSH + union-find without verification ({args.workers} workers)",
                  lambda k: run_ours(paths, work / f"ours-noverify{k}", args.workers, verify="none"))
        if "naive" in methods:
            timed("naive datasketch (128 perms, threshold 0.8, 1 process)", lambda k: run_naive(docs))
        if "datatrove" in methods:
            try:
                import datatrove  # noqa: F401
            except ImportError:
                print("datatrove is not installed: skipped (pip install datatrove)")
            else:
                timed(f"datatrove MinHash, defaults ({args.workers} workers)",
                      lambda k: run_datatrove(work / "input", work / f"datatrove{k}", args.workers, args.shards))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'method':<62} {'precision':>9} {'recall':>7} {'pairs':>6} {'docs/s':>8} {'seconds':>8}")
    for name, s, speed, seconds in results:
        print(f"{name:<62} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['pairs']:>6} {speed:>8,.0f} {seconds:>8.1f}")
    print("\nrecall per copy kind (all copies, whatever their true Jaccard):")
    kinds_sorted = sorted(results[0][1]["per_kind"])
    print(f"{'method':<40} " + " ".join(f"{k[:13]:>13}" for k in kinds_sorted))
    for name, s, _, _ in results:
        print(f"{name[:40]:<40} " + " ".join(f"{s['per_kind'][k][0] / s['per_kind'][k][1]:>13.2f}"
                                              for k in kinds_sorted))
    for name, _, speed, _ in results[1:]:
        print(f"{results[0][0]} / {name}: {results[0][2] / speed:.1f}x docs/s")


if __name__ == "__main__":
    main()
