"""`instruct build RECIPE.yaml [--input ...] [--format FMT] [--output DIR] [--workers N] [key=value ...]`."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from instruct.config import ConfigError, load_yaml
from instruct.empty import refuse_empty
from instruct.errors import user_errors


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--input", "inputs", multiple=True, help="Input path or glob; repeat; replaces the recipe's paths.")
@click.option("--input-format", "--format", "input_format",
              help="Reader format, replacing the recipe's (jsonl, warc, parquet, ...); = read.format.")
@click.option("--output", help="Output folder (DIR/shards, DIR/manifest.json, DIR/report.html).")
@click.option("--workers", type=int, help="Worker processes (default: the recipe's, else 1).")
@click.option("--executor", type=click.Choice(["local", "ray"]), help="Where steps run (default: local).")
@click.option("--strict", is_flag=True, default=None, help="Stop at the first bad input record.")
@click.option("--allow-empty", is_flag=True, help="Exit 0 even when every record was dropped.")
def build(recipe: str, overrides: tuple[str, ...], inputs: tuple[str, ...], input_format: str | None,
          output: str | None, workers: int | None, executor: str | None, strict: bool | None,
          allow_empty: bool) -> None:
    """Run a build recipe: read, filter, dedup, scrub, and write Arrow shards.

    OVERRIDES are `key=value` pairs applied to the recipe, e.g. `write.shard_size=1000` or
    `steps.language.min_score=0.5` (`steps.INDEX.PARAM=value` where a step name repeats).
    """
    from instruct.pipeline.recipe import load_recipe
    from instruct.pipeline.runner import build as run_build

    with user_errors():
        data = load_yaml(recipe)
        if "sources" in data:  # a mixture recipe: several sources combined by weight and cap
            from instruct.mixture import load_mix_config, mix

            ignored = [flag for flag, value in (("--input", inputs), ("--format", input_format), ("--workers", workers),
                                                  ("--executor", executor), ("--strict", strict)) if value]
            if ignored:
                raise ConfigError(f"{recipe}: a mixture recipe takes --output and key=value overrides only, "
                                  f"not {', '.join(ignored)} (set them in each source's recipe)")
            config = load_mix_config(recipe, list(overrides), {"write.output": output})
            manifest = mix(config)
            click.echo(f"mixed {manifest['written']:,} examples -> {config.write.output}")
            return
        flags = {"read.paths": list(inputs), "read.format": input_format, "write.output": output,
                 "workers": workers, "executor": executor, "strict": strict}
        loaded = load_recipe(recipe, list(overrides), data=data, flags=flags)
        manifest = run_build(loaded, data)
    counts = manifest["counts"]
    click.echo(f"read {counts['read']:,} · wrote {counts['written']:,} · rejected {counts['rejected']:,} "
               f"in {manifest['seconds']:.1f}s -> {loaded.write.output}")
    refuse_empty("build", counts["written"], step_reasons(manifest), allow_empty,
                 Path(loaded.write.output) / "rejected", where=f"{loaded.write.output}/manifest.json")


def step_reasons(manifest: dict[str, Any]) -> Counter:
    """(step, reason) -> records dropped, from a build manifest."""
    return Counter({(step["step"], reason): n for step in manifest["counts"]["steps"]
                    for reason, n in step["dropped"].items()})
