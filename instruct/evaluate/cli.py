"""`instruct eval --data PATH_OR_SHARDS_DIR [--adapter DIR] [--model PATH] --output DIR`."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command("eval")
@click.option("--data", required=True, help="EXAMPLE shards folder, .arrow file, or chat JSONL.")
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
def eval_command(data: str, output: str, adapter: str | None, model: str | None, limit: int | None,
                 batch_size: int, max_new_tokens: int, length_normalize: bool, cot: bool, cot_demos: str | None,
                 cot_shots: int, cot_max_new_tokens: int, samples: int, temperature: float) -> None:
    """Accuracy (rank classification) or exact match / ROUGE-L, before and after tuning."""
    from instruct.evaluate import EvalConfig, evaluate, format_table

    with user_errors():
        report = evaluate(EvalConfig(data=data, output=output, model=model, adapter=adapter, limit=limit,
                                     batch_size=batch_size, max_new_tokens=max_new_tokens,
                                     length_normalize=length_normalize, cot=cot or bool(cot_demos),
                                     cot_demos=cot_demos, cot_shots=cot_shots, samples=samples,
                                     cot_max_new_tokens=cot_max_new_tokens,
                                     temperature=temperature))
    click.echo(format_table(report))
