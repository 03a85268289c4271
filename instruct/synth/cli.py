"""`instruct synth [RECIPE.yaml] --method M [--seed-tasks FILE | --input SHARDS | --documents PATH |
--instructions PATH | --data PATH | --seeds PATH [--turns N]] --num N --output DIR [--samples K]
[--judge J --judge-base-url URL --judge-model M] [--base-url URL] [--model NAME] [--concurrency C] [key=value ...]`."""
from __future__ import annotations

import copy
import logging
import os
from collections import Counter

import click

from instruct.empty import refuse_empty
from instruct.errors import fail_if_nothing_written, user_errors


@click.command()
@click.argument("recipe", required=False)
@click.argument("overrides", nargs=-1)
@click.option("--method", type=click.Choice(["self-instruct", "evol-instruct", "backtranslate", "answer", "preference",
                                            "cot", "dialogue"]),
              help="Default: self-instruct (evol-instruct with --input, cot with --data, dialogue with --seeds).")
@click.option("--seed-tasks", type=click.Path(dir_okay=False),
              help="Self-Instruct seed tasks (JSONL, original format).")
@click.option("--input", "inputs", multiple=True,
              help="Evol-Instruct input: EXAMPLE shards folder or chat JSONL; repeat.")
@click.option("--documents", multiple=True, help="backtranslate: DOCUMENT shards folder or JSONL; repeat.")
@click.option("--instructions", multiple=True,
              help="answer, preference: EXAMPLE shards, chat JSONL or JSONL of {prompt}; repeat.")
@click.option("--data", "data_path",
              help="cot: labeled rows (with cot.templates=NAME) or EXAMPLE rows to write rationales for.")
@click.option("--seeds", help="dialogue: seed topics (a line or JSONL record each) or DOCUMENT shards.")
@click.option("--turns", type=int, help="dialogue: at most this many assistant turns per conversation.")
@click.option("--num", type=int, help="self-instruct: instructions to keep; backtranslate: pairs to keep; "
                                      "others: inputs to use (default 100; cot and dialogue: all).")
@click.option("--samples", type=int, help="answer, preference: answers per prompt.")
@click.option("--judge", help="preference: rubric (default), pairwise or reward:DIR.")
@click.option("--judge-base-url", help="preference: the judge's endpoint (default: the policy's).")
@click.option("--judge-model", help="preference: the judge's model name.")
@click.option("--output", help="Output folder: DIR/shards, DIR/manifest.json, DIR/rejected.jsonl, DIR/cache.")
@click.option("--base-url",
              help="OpenAI-compatible endpoint (else OPENAI_BASE_URL, else the embedded model is served).")
@click.option("--model", help="Model name at the endpoint (default: the first one it lists).")
@click.option("--concurrency", type=int, help="Requests in flight at once.")
@click.option("--allow-empty", is_flag=True, help="Exit 0 even when every candidate was dropped.")
def synth(recipe: str | None, overrides: tuple[str, ...], method: str | None, seed_tasks: str | None,
          inputs: tuple[str, ...], documents: tuple[str, ...], instructions: tuple[str, ...], data_path: str | None,
          seeds: str | None, turns: int | None, num: int | None,
          samples: int | None, judge: str | None, judge_base_url: str | None, judge_model: str | None,
          output: str | None, base_url: str | None, model: str | None, concurrency: int | None,
          allow_empty: bool) -> None:
    """Generate instruction data through any OpenAI-compatible endpoint; re-run to resume from the cache.

    OVERRIDES are `key=value` pairs, e.g. `self_instruct.bootstrap_params.max_tokens=64`. The API key is
    read from OPENAI_API_KEY (or the recipe's client.api_key) and never written anywhere.
    """
    from instruct.config import load_yaml
    from instruct.overrides import apply
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
        given = apply(copy.deepcopy(data), overrides)  # flags (below) win over overrides
        if method is None and "method" not in given:  # the input flag given says which method is meant
            implied = [m for m, flag in (("evol-instruct", inputs and not seed_tasks), ("cot", data_path),
                                         ("dialogue", seeds)) if flag]
            method = implied[0] if len(implied) == 1 else None
        chosen = method or given.get("method", "self-instruct")
        section = chosen if chosen in ("answer", "preference") else None
        flags = {"method": method, "seed_tasks": seed_tasks, "num": num, "output": output,
                 "input": list(inputs), "documents": list(documents), "instructions": list(instructions),
                 "data": data_path, "seeds": seeds, "dialogue.turns": turns,
                 "client.base_url": base_url, "client.model": model, "client.concurrency": concurrency}
        for key, value in {"samples": samples, "judge": judge, "judge_base_url": judge_base_url,
                           "judge_model": judge_model}.items():
            if value is None:
                continue
            if section is None or (key != "samples" and section != "preference"):
                raise click.UsageError(f"--{key.replace('_', '-')} applies to --method "
                                       f"{'answer or preference' if key == 'samples' else 'preference'}")
            flags[f"{section}.{key}"] = value
        apply(given, flags=flags)
        loaded = load_synth_recipe(given, [], where=recipe or "synth")
        redactor.secrets.append(loaded.client.api_key or "")
        manifest = run_synth(loaded, data)
    counts, usage = manifest["counts"], manifest["usage"]
    fail_if_nothing_written(counts["written"], usage, loaded.output)
    reasons = Counter({(stage, reason): n for stage, tally in counts["stages"].items()
                       for reason, n in tally.items() if reason != "kept"})
    rejected = sum(reasons.values())
    rows = "pairs" if manifest["schema"] == "PREFERENCE" else "examples"
    click.echo(f"{loaded.method}: wrote {counts['written']:,} {rows} · rejected {rejected:,} candidates · "
               f"requests sent {usage['requests_sent']:,} (cached {usage['cache_hits']:,}, retries "
               f"{usage['retries']:,}) · tokens {usage['prompt_tokens']:,}+{usage['completion_tokens']:,} "
               f"in {manifest['seconds']:.1f}s -> {loaded.output}")
    judge = manifest.get("judge_usage")
    if judge:
        click.echo(f"judge: requests sent {judge['requests_sent']:,} (cached {judge['cache_hits']:,}) · tokens "
                   f"{judge['prompt_tokens']:,}+{judge['completion_tokens']:,}")
    refuse_empty("synth", counts["written"], reasons, allow_empty, where=f"{loaded.output}/manifest.json",
                 fix=f"read {loaded.output}/rejected.jsonl for why candidates were dropped, then loosen those filters",
                 noun="candidates")


def _configure_logging(redactor: logging.Filter) -> None:
    """Log to stderr at INSTRUCT_LOG_LEVEL (default WARNING) through a filter that scrubs API keys."""
    handler = logging.StreamHandler()
    handler.addFilter(redactor)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("INSTRUCT_LOG_LEVEL", "WARNING").upper())
