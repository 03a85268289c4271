"""Local vs Ray executors on one machine: throughput, and the driver's peak memory as the corpus grows.

Corpus: synthetic-from-real documents, each two stdlib docstrings joined (distinct pairs), of
which 15% are perturbed copies of an earlier document (words reversed, dropped or repeated:
near duplicates) and 5% exact copies; JSONL files of 2,500 documents (one work unit each).

Recipe: gopher_repetition, pii, exact_dedup, minhash_dedup (verify=jaccard), on 2 workers.
Both executors run each global step's second pass on a shuffle (the local one spills its
partitions to the run folder, Ray's runs tasks), so the driver holds per-unit stats and
counts, not the signatures. Every run happens in a fresh process; `driver MB` is that
process's peak RSS (ru_maxrss) over the whole build; worker processes and Ray's daemons are
not counted. Both executors must write identical shards (checked: same content hash).

`--executors datatrove` adds datatrove's own MinHash dedup on the same files (signature,
buckets, cluster, filter stages; its defaults: 5-word shingles, 14 buckets x 8 hashes; no
verification), on a fork pool of `--workers`: its MB is the largest of its processes (the
driver's ru_maxrss and its waited-for children's), so it is not the same measure as ours, and
its drop count differs (unverified LSH, no exact pass). Needs `pip install datatrove`, in the
interpreter given by `--datatrove-python` (e.g. a venv, to keep its pins apart).

    python bench/scale_bench.py [--docs 10000 40000 160000] [--workers 2] [--executors local ray datatrove]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

DOCS_PER_FILE = 2500
STEPS = ["gopher_repetition", "pii", "exact_dedup", "minhash_dedup"]


def make_corpus(folder: Path, docs: int, seed: int = 0) -> Path:
    """Write `docs` documents (once per size) as JSONL files; returns the folder."""
    from instruct.corpus import stdlib_docstrings

    target = folder / f"docs{docs}"
    if (target / "done").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rng = random.Random(seed)
    pool = [doc for _, doc in stdlib_docstrings()]
    written: list[str] = []
    handle = None
    for index in range(docs):
        if index % DOCS_PER_FILE == 0:
            if handle:
                handle.close()
            handle = open(target / f"part{index // DOCS_PER_FILE:04d}.jsonl", "w", encoding="utf-8")
        roll = rng.random()
        if written and roll < 0.05:
            text = rng.choice(written)
        elif written and roll < 0.20:
            text = perturb(rng.choice(written), rng)
        else:
            text = "\n\n".join(rng.sample(pool, 2))
        written.append(text)
        handle.write(json.dumps({"text": text}) + "\n")
    handle.close()
    (target / "done").write_text("")
    return target


def perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 30)):
        i = rng.randrange(len(words))
        action = rng.random()
        if action < 0.4:
            words[i] = words[i][::-1]
        elif action < 0.7:
            del words[i]
        else:
            words.insert(i, words[i])
    return " ".join(words)


def run_child(executor: str, corpus: Path, output: Path, workers: int) -> dict:
    """One build in this process; reports time, counts, the output's hash and this process's peak RSS."""
    from instruct.io.shards import shard_paths
    from instruct.pipeline.recipe import load_recipe
    from instruct.pipeline.runner import build

    data = {"read": {"paths": [str(corpus / "*.jsonl")]}, "steps": STEPS,
            "write": {"output": str(output), "keep_rejected": False, "report": False},
            "executor": executor, "workers": workers}
    started = time.perf_counter()
    manifest = build(load_recipe(None, data=data), data, show_progress=False)
    seconds = time.perf_counter() - started
    digest = hashlib.blake2b(digest_size=8)
    for path in shard_paths(output):
        digest.update(path.name.encode() + path.read_bytes())
    steps = {s["step"]: s for s in manifest["counts"]["steps"]}
    return {"seconds": seconds, "read": manifest["counts"]["read"], "written": manifest["counts"]["written"],
            "near_dropped": sum(steps["minhash_dedup"]["dropped"].values()),
            "exact_dropped": sum(steps["exact_dedup"]["dropped"].values()),
            "shards": digest.hexdigest(), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_datatrove(corpus: Path, output: Path, workers: int) -> dict:
    """datatrove's four MinHash stages on the same JSONL files; MB: its largest process."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    files, config = len(list(corpus.glob("*.jsonl"))), MinhashConfig()
    stages = [([JsonlReader(str(corpus)), MinhashDedupSignature(f"{output}/signatures", config=config)], files),
              ([MinhashDedupBuckets(f"{output}/signatures", f"{output}/buckets", config=config)], config.num_buckets),
              ([MinhashDedupCluster(f"{output}/buckets", f"{output}/remove_ids", config=config)], 1),
              ([JsonlReader(str(corpus)), MinhashDedupFilter(f"{output}/remove_ids"),
                JsonlWriter(f"{output}/deduped")], files)]
    started = time.perf_counter()
    for index, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), start_method="fork",
                              logging_dir=f"{output}/logs{index}").run()
    seconds = time.perf_counter() - started
    written = sum(1 for path in (output / "deduped").glob("*.jsonl*") for _ in _lines(path))
    read = sum(1 for path in corpus.glob("*.jsonl") for _ in _lines(path))
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": seconds, "read": read, "written": written, "near_dropped": read - written,
            "exact_dropped": 0, "shards": "", "peak_mb": peak / 1024}


def _lines(path: Path):
    import gzip

    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as handle:
        yield from handle


def measure(executor: str, corpus: Path, workdir: Path, workers: int, python: str = sys.executable) -> dict:
    output = workdir / f"out-{executor}-{corpus.name}"
    shutil.rmtree(output, ignore_errors=True)
    env = {**os.environ, "INSTRUCT_NO_PROGRESS": "1"}
    env.pop("RAY_ADDRESS", None)  # a local cluster of `workers` CPUs, as the local executor's pool
    result = subprocess.run([python, __file__, "--child", executor, str(corpus), str(output), str(workers)],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{executor} on {corpus.name} failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(output, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", nargs="+", default=["local", "ray"])
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "instruct-scale-bench"))
    parser.add_argument("--datatrove-python", default=sys.executable, help="interpreter with datatrove installed")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        executor, corpus, output, workers = args.child
        run = run_datatrove if executor == "datatrove" else partial(run_child, executor)
        print(json.dumps(run(Path(corpus), Path(output), int(workers))))
        return

    workdir = Path(args.workdir)
    print(f"recipe: {', '.join(STEPS)}; workers: {args.workers}; cpus: {os.cpu_count()}; "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    header = (f"{'docs':>8} {'executor':>8} {'seconds':>8} {'docs/s':>7} {'driver MB':>9} {'MB vs smallest':>14} "
              f"{'exact drop':>10} {'near drop':>9} {'written':>8} {'same shards':>11}")
    print(header)
    print("-" * len(header))
    first: dict[str, float] = {}
    for docs in args.docs:
        corpus = make_corpus(workdir, docs)
        results = {executor: measure(executor, corpus, workdir, args.workers,
                                     args.datatrove_python if executor == "datatrove" else sys.executable)
                   for executor in args.executors}
        reference = results[args.executors[0]]
        for executor, r in results.items():
            first.setdefault(executor, r["peak_mb"])
            print(f"{docs:>8,} {executor:>8} {r['seconds']:>8.1f} {r['read'] / r['seconds']:>7,.0f} "
                  f"{r['peak_mb']:>9,.0f} {r['peak_mb'] / first[executor]:>13.2f}x {r['exact_dropped']:>10,} "
                  f"{r['near_dropped']:>9,} {r['written']:>8,} "
                  f"{str(r['shards'] == reference['shards']) if r['shards'] else '-':>11}")
        if {"ray", "local"} <= set(results):
            print(f"{'':>8} ray/local time: {results['ray']['seconds'] / results['local']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
