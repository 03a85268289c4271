"""`instruct eval --data PATH_OR_SHARDS_DIR | --benchmark lm-eval:TASK[,TASK] [--adapter DIR] [--model PATH] --output DIR`."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command("eval")
@click.option("--data", help="EXAMPLE shards folder, .arrow file, or chat JSONL.")
@click.option("--benchmark", help="lm-eval:TASK[,TASK]: through lm-evaluation-harness (the lm-eval extra); "
              "lm-eval:unicode_category is built offline.")
@click.option("--output", required=True, help="Writes DIR/eval.json and DIR/predictions.jsonl.")
@click.option("--adapter", help="A tuned adapter folder; scored against its base model.")
@click.option("--model", help="Base model: HF folder or .gguf (default: the embedded SmolLM2).")
@click.option("--limit", type=int, help="Evaluate the first N examples only.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-new-tokens", type=int, default=64, show_default=True, help="For generation tasks.")
@click.option("--length-normalize", is_flag=True, help="Rank choices by mean, not summed, log-likelihood.")
def eval_command(data: str | None, benchmark: str | None, output: str, adapter: str | None, model: str | None, limit: int | None,
                 batch_size: int, max_new_tokens: int, length_normalize: bool) -> None:
    """Accuracy (rank classification) or exact match / ROUGE-L, before and after tuning."""
    from instruct.evaluate import EvalConfig, evaluate, format_table

    if benchmark:
        from instruct.evaluate.benchmark import format_benchmark, run_benchmark

        with user_errors():
            try:
                report = run_benchmark(benchmark, output, model, adapter, limit, batch_size)
            except ValueError as error:
                raise click.ClickException(str(error)) from None
        click.echo(format_benchmark(report))
        return
    if not data:
        raise click.UsageError("give --data (held-out examples) or --benchmark lm-eval:TASK")
    with user_errors():
        report = evaluate(EvalConfig(data=data, output=output, model=model, adapter=adapter, limit=limit,
                                     batch_size=batch_size, max_new_tokens=max_new_tokens,
                                     length_normalize=length_normalize))
    click.echo(format_table(report))
