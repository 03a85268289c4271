"""`instruct synth [RECIPE.yaml] --method self-instruct|evol-instruct|cot|dialogue [--seed-tasks FILE |
--input SHARDS | --data PATH | --seeds PATH [--turns N]] --num N --output DIR [--base-url URL] [--model NAME]
[--concurrency C] [key=value ...]`."""
from __future__ import annotations

import logging
import os

import click

from instruct.errors import user_errors


@click.command()
@click.argument("recipe", required=False)
@click.argument("overrides", nargs=-1)
@click.option("--method", type=click.Choice(["self-instruct", "evol-instruct", "cot", "dialogue"]),
              help="Default: self-instruct (evol-instruct with --input, cot with --data, dialogue with --seeds).")
@click.option("--seed-tasks", type=click.Path(dir_okay=False),
              help="Self-Instruct seed tasks (JSONL, original format).")
@click.option("--input", "inputs", multiple=True,
              help="Evol-Instruct input: EXAMPLE shards folder or chat JSONL; repeat.")
@click.option("--data", "data_path",
              help="CoT: labeled rows (with cot.templates=NAME) or EXAMPLE rows to write rationales for.")
@click.option("--seeds", help="Dialogue: seed topics (a line or JSONL record each) or DOCUMENT shards.")
@click.option("--turns", type=int, help="Dialogue: at most this many assistant turns per conversation.")
@click.option("--num", type=int, help="Self-Instruct: instructions to keep; Evol-Instruct: examples to evolve; "
                                      "CoT / dialogue: items / seeds to use (default 100, 100, all).")
@click.option("--output", help="Output folder: DIR/shards, DIR/manifest.json, DIR/rejected.jsonl, DIR/cache.")
@click.option("--base-url",
              help="OpenAI-compatible endpoint (else OPENAI_BASE_URL, else the embedded model is served).")
@click.option("--model", help="Model name at the endpoint (default: the first one it lists).")
@click.option("--concurrency", type=int, help="Requests in flight at once.")
def synth(recipe: str | None, overrides: tuple[str, ...], method: str | None, seed_tasks: str | None,
          inputs: tuple[str, ...], data_path: str | None, seeds: str | None, turns: int | None, num: int | None,
          output: str | None, base_url: str | None, model: str | None, concurrency: int | None) -> None:
    """Generate instruction data through any OpenAI-compatible endpoint; re-run to resume from the cache.

    OVERRIDES are `key=value` pairs, e.g. `self_instruct.bootstrap_params.max_tokens=64`. The API key is
    read from OPENAI_API_KEY (or the recipe's client.api_key) and never written anywhere.
    """
    from instruct.config import load_yaml
    from instruct.synth.client import RedactingFilter
    from instruct.synth.run import load_synth_recipe, run_synth

    redactor = RedactingFilter(os.environ.get("OPENAI_API_KEY"))
    _configure_logging(redactor)
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        recipe, overrides = None, (recipe, *overrides)  # only overrides were given
    if seed_tasks and inputs:
        raise click.UsageError("give either --seed-tasks (self-instruct) or --input (evol-instruct), not both")
    with user_errors():
        data = load_yaml(recipe) if recipe else {}
        flags = {"method": method, "seed_tasks": seed_tasks, "num": num, "output": output, "data": data_path,
                 "seeds": seeds, "dialogue.turns": turns,
                 "client.base_url": base_url, "client.model": model, "client.concurrency": concurrency}
        loaded = load_synth_recipe(data, list(overrides), where=recipe or "synth", check=False)
        for key, value in flags.items():
            if value is not None:
                _set(loaded, key, value)
        if inputs:
            loaded.input = list(inputs)
        if method is None:  # the input flag given says which method is meant
            implied = [m for m, given in (("evol-instruct", inputs and not seed_tasks), ("cot", data_path),
                                          ("dialogue", seeds)) if given]
            loaded.method = implied[0] if len(implied) == 1 else loaded.method
        loaded = load_synth_recipe(_as_data(loaded), [], where=recipe or "synth")  # re-validate after flags
        redactor.secrets.append(loaded.client.api_key or "")
        manifest = run_synth(loaded, data)
    counts, usage = manifest["counts"], manifest["usage"]
    rejected = sum(n for stage in counts["stages"].values() for reason, n in stage.items() if reason != "kept")
    click.echo(f"{loaded.method}: wrote {counts['written']:,} examples · rejected {rejected:,} candidates · "
               f"requests sent {usage['requests_sent']:,} (cached {usage['cache_hits']:,}, retries "
               f"{usage['retries']:,}) · tokens {usage['prompt_tokens']:,}+{usage['completion_tokens']:,} "
               f"in {manifest['seconds']:.1f}s -> {loaded.output}")


def _set(recipe, dotted: str, value) -> None:
    target = recipe
    *parents, leaf = dotted.split(".")
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, leaf, value)


def _as_data(recipe) -> dict:
    from instruct.config import to_dict

    return to_dict(recipe)


def _configure_logging(redactor: logging.Filter) -> None:
    """Log to stderr at INSTRUCT_LOG_LEVEL (default WARNING) through a filter that scrubs API keys."""
    handler = logging.StreamHandler()
    handler.addFilter(redactor)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("INSTRUCT_LOG_LEVEL", "WARNING").upper())
