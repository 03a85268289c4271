"""Synth benchmarks: client throughput against a controlled-latency server, and the ROUGE-L novelty filter.

    python bench/synth_bench.py [--part all|throughput|rouge] [--latency 1.0 0.1] [--concurrency 16 64 256]
                                [--instructions 50000] [--naive-sample 400]

1. `instruct serve --engine fake --fake-latency L` runs in its own process; `LLMClient` sends C x rounds
   distinct requests with concurrency C (no cache). Ideal throughput is C / L; the target is >= 90 %.
   The client costs ~1.6 ms CPU per request (openai + httpx) and the server ~0.4 ms, so on a CPU shared
   with other work short latencies at high concurrency are CPU-bound: read the ratio with the load average.
2. Self-Instruct's novelty filter over 50k instructions (stdlib docstring sentences plus edited
   near-duplicates, like a model's repetitive output): our RougeIndex vs the upstream loop, which scores every
   candidate against every kept instruction with `rouge_score`. The naive loop is timed on the first
   candidates and extrapolated to the full run's exact number of pairs (printed as such).
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instruct.serve.process import server_process  # noqa: E402
from instruct.synth.client import ClientConfig, LLMClient, Request  # noqa: E402
from instruct.synth.rouge import RougeIndex, rouge_l_tokens, tokenize  # noqa: E402


def throughput(url: str, concurrency: int, requests: int) -> float:
    async def go() -> float:
        config = ClientConfig(base_url=url, model="fake", concurrency=concurrency, max_retries=0)
        async with LLMClient(config) as client:
            await client.complete_many([Request(prompt=f"warm-up {i}", params={"max_tokens": 8})
                                        for i in range(concurrency)])
            batch = [Request(prompt=f"Come up with a series of tasks:\n1. Task number {i}\n2.",
                             params={"max_tokens": 32, "stop": ["\n\n"]}) for i in range(requests)]
            started = time.perf_counter()
            responses = await client.complete_many(batch)
            elapsed = time.perf_counter() - started
            assert all(r.ok for r in responses), [r.error for r in responses if not r.ok][:3]
            return requests / elapsed

    return asyncio.run(go())


def instructions(count: int, seed: int = 0) -> list[str]:
    from instruct.corpus import stdlib_docstrings

    sentences = []
    for _, text in stdlib_docstrings(min_words=1):
        for sentence in text.replace("\n", " ").split(". "):
            if 3 < len(sentence.split()) <= 60:
                sentences.append(sentence.strip())
    sentences = list(dict.fromkeys(sentences))
    rng = random.Random(seed)
    out = list(sentences[:count])
    while len(out) < count:  # near-duplicates: 1-3 words replaced, as a model repeating itself would
        tokens = rng.choice(sentences).split()
        for _ in range(rng.randint(1, 3)):
            tokens[rng.randrange(len(tokens))] = rng.choice(["the", "a", "list", "given", "text", "value"])
        out.append(" ".join(tokens))
    rng.shuffle(out)
    return out, min(len(sentences), count)


def novelty_with_index(texts: list[str]) -> tuple[float, int, int, int]:
    index = RougeIndex(0.7)
    pairs = 0
    started = time.perf_counter()
    for text in texts:
        pairs += len(index)
        best, _ = index.max_similarity(text)
        if best <= 0.7:
            index.add(text)
    return time.perf_counter() - started, len(index), pairs, index.comparisons


def naive_per_pair(texts: list[str], sample: int, scorer=None) -> tuple[float, int]:
    """Seconds per pair of the all-pairs loop (rouge_score if given, else our exact F), on the first texts."""
    kept: list = []
    pairs = 0
    started = time.perf_counter()
    for text in texts[:sample]:
        if scorer is not None:
            best = max((scorer.score(text, k)["rougeL"].fmeasure for k in kept), default=0.0)
        else:
            tokens = tokenize(text)
            best = max((rouge_l_tokens(tokens, k) for k in kept), default=0.0)
        pairs += len(kept)
        if best <= 0.7:
            kept.append(text if scorer is not None else tokenize(text))
    return (time.perf_counter() - started) / max(pairs, 1), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "throughput", "rouge"], default="all")
    parser.add_argument("--latency", type=float, nargs="+", default=[1.0, 0.1],
                        help="seconds per request (hosted LLM APIs take ~1-10 s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--rounds", type=int, default=10, help="requests per run = concurrency x rounds")
    parser.add_argument("--instructions", type=int, default=50_000)
    parser.add_argument("--naive-sample", type=int, default=400)
    args = parser.parse_args()

    if args.part in ("all", "throughput"):
        print("## client throughput (fake server in its own process; ideal = concurrency / latency)")
        print(f"{'latency':>8} {'concurrency':>11} {'requests':>9} {'achieved/s':>11} {'ideal/s':>9} {'ratio':>7}")
        for latency in args.latency:
            with server_process("--engine", "fake", "--fake-latency", str(latency)) as url:
                for concurrency in args.concurrency:
                    achieved = throughput(url, concurrency, concurrency * args.rounds)
                    ideal = concurrency / latency
                    print(f"{latency:>7.2f}s {concurrency:>11} {concurrency * args.rounds:>9} {achieved:>11.1f} "
                          f"{ideal:>9.1f} {achieved / ideal:>7.1%}")
    if args.part in ("all", "rouge"):
        novelty(args.instructions, args.naive_sample)


def novelty(count: int, naive_sample: int) -> None:
    texts, unique = instructions(count)
    print(f"\n## ROUGE-L > 0.7 novelty filter, {len(texts):,} instructions "
          f"({unique:,} distinct stdlib docstring sentences + near-duplicates)")
    seconds, kept, pairs, comparisons = novelty_with_index(texts)
    print(f"RougeIndex: {seconds:.1f} s, kept {kept:,}, exact LCS computations {comparisons:,} "
          f"(all-pairs would be {pairs:,})")
    rows = [("instruct RougeIndex (measured)", seconds)]
    ours_per_pair, _ = naive_per_pair(texts, naive_sample * 4)
    rows.append(("all-pairs, our exact F (extrapolated)", ours_per_pair * pairs))
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        print("rouge-score is not installed: `pip install rouge-score` for the upstream baseline")
    else:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        per_pair, sampled = naive_per_pair(texts, naive_sample, scorer)
        rows.append((f"all-pairs rouge_score loop (extrapolated from {sampled:,} pairs)", per_pair * pairs))
    print(f"{'method':<58} {'seconds':>12} {'vs index':>10}")
    for name, value in rows:
        print(f"{name:<58} {value:>12,.1f} {value / seconds:>9.0f}x")


if __name__ == "__main__":
    main()
