"""`instruct eval --data PATH_OR_SHARDS_DIR | --benchmark lm-eval:TASK[,TASK] [--adapter DIR] [--model PATH] --output DIR`,
or `instruct eval --pairs PREFERENCE_DATA [--adapter DIR | --reward DIR] --output DIR`."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command("eval")
@click.option("--data", help="EXAMPLE shards folder, .arrow file, or chat JSONL.")
@click.option("--benchmark", help="lm-eval:TASK[,TASK]: through lm-evaluation-harness (the lm-eval extra); "
              "lm-eval:unicode_category is built offline.")
@click.option("--pairs", help="PREFERENCE data: preference accuracy (and win rate with --adapter and --reward).")
@click.option("--reward", help="With --pairs: a reward-model folder (instruct tune trainer/reward.yaml).")
@click.option("--output", required=True, help="Writes DIR/eval.json and DIR/predictions.jsonl.")
@click.option("--adapter", help="A tuned adapter folder; scored against its base model.")
@click.option("--model", help="Base model: HF folder or .gguf (default: the embedded SmolLM2).")
@click.option("--limit", type=int, help="Evaluate the first N examples only.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-new-tokens", type=int, default=64, show_default=True, help="For generation tasks.")
@click.option("--length-normalize", is_flag=True, help="Rank choices by mean, not summed, log-likelihood.")
@click.option("--cot", is_flag=True, help="Also score chain-of-thought answers (zero-shot, or few-shot with "
                                          "--cot-demos), extracted by the template's answer pattern.")
@click.option("--cot-demos", help="EXAMPLE rows with rationales (e.g. synth --method cot output): few-shot CoT.")
@click.option("--cot-shots", type=int, default=3, show_default=True)
@click.option("--cot-max-new-tokens", type=int, default=256, show_default=True, help="Rationale length limit.")
@click.option("--samples", type=int, default=1, show_default=True,
              help="With --cot: K > 1 sampled rationales per item, majority vote (self-consistency).")
@click.option("--temperature", type=float, default=0.7, show_default=True, help="For --samples.")
def eval_command(data: str | None, benchmark: str | None, pairs: str | None, reward: str | None, output: str,
                 adapter: str | None, model: str | None, limit: int | None, batch_size: int, max_new_tokens: int,
                 length_normalize: bool, cot: bool, cot_demos: str | None, cot_shots: int, cot_max_new_tokens: int,
                 samples: int, temperature: float) -> None:
    """Accuracy (rank classification) or exact match / ROUGE-L, before and after tuning (--cot: also with
    chain-of-thought); with --pairs, preference accuracy and win rate; with --benchmark, lm-eval tasks."""
    from instruct.evaluate import EvalConfig, evaluate, format_table

    if sum(x is not None for x in (data, benchmark, pairs)) != 1:
        raise click.UsageError("give exactly one of --data, --pairs and --benchmark lm-eval:TASK")
    if benchmark:
        from instruct.evaluate.benchmark import format_benchmark, run_benchmark

        with user_errors():
            try:
                report = run_benchmark(benchmark, output, model, adapter, limit, batch_size)
            except ValueError as error:
                raise click.ClickException(str(error)) from None
        click.echo(format_benchmark(report))
        return
    if pairs is not None:
        from instruct.evaluate.preference import PairEvalConfig, evaluate_pairs, format_pair_table

        with user_errors():
            report = evaluate_pairs(PairEvalConfig(pairs, output, model, adapter, reward, limit, batch_size,
                                                   max_new_tokens))
        click.echo(format_pair_table(report))
        return
    with user_errors():
        report = evaluate(EvalConfig(data=data, output=output, model=model, adapter=adapter, limit=limit,
                                     batch_size=batch_size, max_new_tokens=max_new_tokens,
                                     length_normalize=length_normalize, cot=cot or bool(cot_demos),
                                     cot_demos=cot_demos, cot_shots=cot_shots, samples=samples,
                                     cot_max_new_tokens=cot_max_new_tokens,
                                     temperature=temperature))
    click.echo(format_table(report))
