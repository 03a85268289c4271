"""`instruct eval --data PATH_OR_SHARDS_DIR | --benchmark lm-eval:TASK[,TASK] [--adapter DIR] [--model PATH] --output DIR`,
or `instruct eval --pairs PREFERENCE_DATA [--adapter DIR | --reward DIR] --output DIR`."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command("eval")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--data", "--input", "data", help="EXAMPLE shards folder, .arrow file, or chat JSONL (= data).")
@click.option("--benchmark", help="lm-eval:TASK[,TASK]: through lm-evaluation-harness (the lm-eval extra); "
              "lm-eval:unicode_category is built offline.")
@click.option("--pairs", help="PREFERENCE data: preference accuracy (and win rate with --adapter and --reward).")
@click.option("--reward", help="With --pairs: a reward-model folder (instruct tune trainer/reward.yaml).")
@click.option("--output", required=True, help="Writes DIR/eval.json and DIR/predictions.jsonl.")
@click.option("--adapter", help="A tuned adapter folder; scored against its base model.")
@click.option("--model", help="Base model: HF folder or .gguf (default: the adapter's own base, else the embedded SmolLM2).")
@click.option("--limit", type=int, help="Evaluate the first N examples only.")
@click.option("--batch-size", type=int, help="Examples per forward pass (default 16).")
@click.option("--max-new-tokens", type=int, help="For generation tasks (default 64).")
@click.option("--length-normalize", is_flag=True, default=None, help="Rank choices by mean, not summed, log-likelihood.")
@click.option("--cot", is_flag=True, default=None, help="Also score chain-of-thought answers (zero-shot, or few-shot with "
                                          "--cot-demos), extracted by the template's answer pattern.")
@click.option("--cot-demos", help="EXAMPLE rows with rationales (e.g. synth --method cot output): few-shot CoT.")
@click.option("--cot-shots", type=int, help="Few-shot CoT demonstrations (default 3).")
@click.option("--cot-max-new-tokens", type=int, help="Rationale length limit (default 256).")
@click.option("--samples", type=int,
              help="With --cot: K > 1 sampled rationales per item, majority vote (self-consistency; default 1).")
@click.option("--temperature", type=float, help="For --samples (default 0.7).")
def eval_command(overrides: tuple[str, ...], data: str | None, benchmark: str | None, pairs: str | None,
                 reward: str | None, output: str, adapter: str | None, model: str | None, limit: int | None,
                 batch_size: int | None, max_new_tokens: int | None, length_normalize: bool | None, cot: bool | None,
                 cot_demos: str | None, cot_shots: int | None, cot_max_new_tokens: int | None, samples: int | None,
                 temperature: float | None) -> None:
    """Accuracy (rank classification) or exact match / ROUGE-L, before and after tuning (--cot: also with
    chain-of-thought); with --pairs, preference accuracy and win rate; with --benchmark, lm-eval tasks.

    OVERRIDES are `key=value` settings of the evaluation (any EvalConfig key, e.g. `seed=1 batch_size=8`);
    a flag is the same setting spelled as a flag."""
    from instruct.evaluate import EvalConfig, evaluate, format_table
    from instruct.overrides import config_from

    if sum(x is not None for x in (data, benchmark, pairs)) != 1:
        raise click.UsageError("give exactly one of --data, --pairs and --benchmark lm-eval:TASK")
    if benchmark:
        from instruct.evaluate.benchmark import format_benchmark, run_benchmark

        with user_errors():
            try:
                report = run_benchmark(benchmark, output, model, adapter, limit,
                                       **({"batch_size": batch_size} if batch_size else {}))
            except ValueError as error:
                raise click.ClickException(str(error)) from None
        click.echo(format_benchmark(report))
        return
    if pairs is not None:
        from instruct.evaluate.preference import (
            PairEvalConfig,
            evaluate_pairs,
            format_pair_table,
        )

        with user_errors():
            flags = {"pairs": pairs, "output": output, "model": model, "adapter": adapter, "reward": reward,
                     "limit": limit, "batch_size": batch_size, "max_new_tokens": max_new_tokens}
            report = evaluate_pairs(config_from(PairEvalConfig, overrides, flags, "eval"))
        click.echo(format_pair_table(report))
        return
    with user_errors():
        flags = {"data": data, "output": output, "model": model, "adapter": adapter, "limit": limit,
                 "batch_size": batch_size, "max_new_tokens": max_new_tokens, "length_normalize": length_normalize,
                 "cot": cot or (True if cot_demos else None), "cot_demos": cot_demos, "cot_shots": cot_shots,
                 "samples": samples, "cot_max_new_tokens": cot_max_new_tokens, "temperature": temperature}
        report = evaluate(config_from(EvalConfig, overrides, flags, "eval"))
    click.echo(format_table(report))
