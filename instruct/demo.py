"""`instruct demo`: the whole product on the embedded defaults, offline, in a few minutes.

1. `instruct samples`: real inputs derived from this Python installation (web WARC, code, books);
2. `instruct build pipelines/web.yaml`: extraction, quality filters, dedup, PII -> DOCUMENT shards;
3. the Unicode-category task (a labeled dataset every Python carries) templated into train and
   test EXAMPLE shards, train decontaminated against test;
4. `instruct mix`: a few of the web documents replayed next to the task's examples;
5. `instruct tune trainer/lora.yaml`: a short LoRA run on the embedded SmolLM2-135M-Instruct, the
   examples trained as SFT and the documents as continued pre-training (loss reported per source);
6. `instruct eval`: test accuracy of the base model and of base + adapter.

The full-size version of steps 3-5 is `examples/unicode_category/run.sh`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from instruct.errors import user_errors
from instruct.resources import resource_path

TASK = ("samples", "unicode_category")  # the task's recipes, shipped in the package (examples/ links to them)


def run_demo(output: Path, steps: int, eval_examples: int, workers: int, web_documents: int = 8) -> dict[str, Any]:
    from instruct.evaluate import EvalConfig, evaluate, format_table
    from instruct.labeled_samples import write_unicode_category
    from instruct.mixture import MixConfig, MixSource, MixWrite, mix
    from instruct.pipeline.recipe import load_recipe
    from instruct.pipeline.runner import build
    from instruct.samples import generate
    from instruct.tune import load_config, train

    samples = Path("data/generated")
    if not (samples / "web").is_dir():
        click.secho(f"[1/6] writing sample inputs to {samples}/", bold=True)
        generate(samples)
    click.secho("[2/6] building the web corpus (pipelines/web.yaml)", bold=True)
    web = build(load_recipe(resource_path("pipelines", "web.yaml"),
                            [f"write.output={output / 'web'}", f"workers={workers}"]))
    click.secho("[3/6] templating the Unicode-category task", bold=True)
    splits = write_unicode_category(samples / "unicode_category")
    train_manifest = build(load_recipe(resource_path(*TASK, "train.yaml"), [f"write.output={output / 'unicode/train'}"]))
    build(load_recipe(resource_path(*TASK, "heldout.yaml"), [f"write.output={output / 'unicode/test'}",
                                                  f"read.paths=[{splits['test']}]"]))
    click.secho(f"[4/6] mixing {web_documents} web documents into the task's examples", bold=True)
    mix(MixConfig(sources=[MixSource("unicode_category", shards=str(output / "unicode/train")),
                           MixSource("web", shards=str(output / "web"), cap=web_documents)],
                  write=MixWrite(output=str(output / "mix"))), show_progress=False)
    click.secho(f"[5/6] LoRA on the embedded SmolLM2 for {steps} steps (examples: SFT, documents: pretrain)", bold=True)
    tuned = train(load_config(resource_path("trainer", "lora.yaml"),
                              ["train.lr=1e-3", "train.micro_batch_tokens=1024", "data.max_length=512", "train.grad_accum=1",
                               "data.eval_fraction=0.05", "train.eval_every=1000000"],
                              {"data.path": str(output / "mix"), "output": str(output / "adapter"),
                               "train.max_steps": steps}))
    click.secho(f"[6/6] evaluating base vs base + adapter on {eval_examples} test examples", bold=True)
    report = evaluate(EvalConfig(data=str(output / "unicode/test"), output=str(output / "eval"),
                                 adapter=str(tuned.output), limit=eval_examples))
    click.echo(f"web: read {web['counts']['read']:,}, wrote {web['counts']['written']:,} documents "
               f"-> {output / 'web'}/report.html")
    click.echo(f"train examples: {train_manifest['counts']['written']:,} after decontamination; "
               f"eval loss {tuned.initial_eval_loss:.3f} -> {tuned.eval_loss:.3f}")
    if tuned.loss_by_source:
        click.echo(f"trained {tuned.examples:,} examples and {tuned.documents} web documents ({tuned.windows} windows); "
                   "mean train loss per source: " + ", ".join(f"{n} {v:.3f}" for n, v in tuned.loss_by_source.items()))
    click.echo(format_table(report))
    return report


@click.command()
@click.option("--output", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--steps", default=12, show_default=True, help="LoRA optimizer steps (about 16 examples each).")
@click.option("--eval-examples", default=100, show_default=True, help="Test examples scored before/after.")
@click.option("--workers", default=2, show_default=True, help="Build worker processes.")
@click.option("--web-documents", default=8, show_default=True,
              help="Web documents replayed (continued pre-training) in the tune mix; 0: none.")
def demo(output: str, steps: int, eval_examples: int, workers: int, web_documents: int) -> None:
    """Run samples -> build -> template -> mix -> tune -> eval on the embedded defaults."""
    with user_errors():
        run_demo(Path(output), steps, eval_examples, workers, web_documents)
