"""`instruct tune [RECIPE.yaml] --data PATH_OR_SHARDS_DIR --output DIR [--max-steps N] [key=value ...]`."""
from __future__ import annotations

import os

import click

from instruct.errors import user_errors


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="[RECIPE.yaml] [KEY=VALUE]...")
@click.option("--data", "--input", "data", default=None,
              help="EXAMPLE, DOCUMENT, mixed or PREFERENCE shards folder, .arrow file, chat / document / preference JSONL.")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False), help="Folder for the adapter, log, plot, checkpoints.")
@click.option("--max-steps", "max_steps", type=int, default=None, help="Optimizer steps (default: train.epochs over the data).")
@click.option("--merge", is_flag=True, default=None, help="Also write DIR/merged: the adapter folded into the base model.")
@click.option("--teacher", "teacher", default=None, help="Distil from this model (HF folder or .gguf; = distill.teacher).")
@click.option("--prompts", default=None, help="ppo/grpo: prompts (JSONL or shards) to generate from.")
@click.option("--reward", default=None, help="ppo/grpo: a reward-model folder or module:function(prompts, completions).")
def tune(args: tuple[str, ...], data: str | None, output: str, max_steps: int | None, merge: bool | None,
         teacher: str | None, prompts: str | None, reward: str | None) -> None:
    """Fine-tune a model on instruction data (SFT), documents (continued pre-training) or preference pairs
    (reward, DPO-family); PPO/GRPO from --prompts. RECIPE is a YAML file (see trainer/); any recipe key can be
    overridden as key=value, e.g. method.r=32 train.lr=1e-4 model=path/to/model.gguf.

    Multi-GPU: the same command under `torchrun --nproc_per_node N -m instruct tune ...` or
    `accelerate launch -m instruct tune ...` trains with DDP, or with FSDP (sharded) given train.fsdp=true."""
    from instruct.overrides import split_args
    from instruct.tune import load_config, train

    with user_errors():
        recipe, overrides = split_args(args)
        config = load_config(recipe, overrides, {"data.path": data, "output": output,
                                                 "train.max_steps": max_steps, "merge": merge,
                                                 "distill.teacher": teacher, "rl.prompts": prompts,
                                                 "rl.reward": reward})
        result = train(config)
    if os.environ.get("RANK", "0") != "0":  # under torchrun the main process reports the run once
        return
    if result.eval_metrics:
        click.echo("  ".join(f"{k}: {v:.4f}" for k, v in result.eval_metrics.items()))
    click.echo(f"adapter: {result.output}  steps: {result.steps}  train loss: {_fmt(result.train_loss)}  "
               f"eval loss: {_fmt(result.initial_eval_loss)} -> {_fmt(result.eval_loss)}  "
               f"examples: {result.examples} (+{result.eval_examples} eval)  {result.tokens_per_second:.0f} tokens/s")
    if result.documents:
        click.echo(f"documents: {result.documents} -> {result.windows} windows ({result.objective}), "
                   f"{result.tokens_trained:,} tokens trained; held-out perplexity "
                   f"{_fmt(result.initial_eval_perplexity)} -> {_fmt(result.eval_perplexity)}")
    for name, loss in result.eval_loss_by_source.items():
        click.echo(f"  eval loss {name}: {_fmt(result.initial_eval_loss_by_source.get(name))} -> {_fmt(loss)}")
    if result.dropped or result.truncated_prompts:
        click.echo(f"dropped examples: {result.dropped or 'none'}; prompts truncated: {result.truncated_prompts}", err=True)
    if result.merged:
        click.echo(f"merged model: {result.merged}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
