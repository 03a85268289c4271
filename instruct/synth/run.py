"""`instruct synth` end to end: recipe -> endpoint (given, or the embedded model served on 127.0.0.1)
-> a method (`METHODS`: Self-Instruct, Evol-Instruct, back-translation, answers, preferences, CoT rationales,
dialogues) -> EXAMPLE or PREFERENCE shards, rejected.jsonl and manifest.json.

Output folder layout: DIR/shards/*.arrow, DIR/manifest.json, DIR/rejected.jsonl, DIR/cache/requests.jsonl.
The cache is the only state a crash needs: shards and manifest are rebuilt from it on every run.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import pyarrow as pa

from instruct import resources
from instruct.config import ConfigError, from_dict, to_dict
from instruct.io.shards import ShardWriter, atomic_path, shard_paths, write_json
from instruct.overrides import apply as apply_overrides
from instruct.schema import EXAMPLE_SCHEMA, PREFERENCE_SCHEMA, examples_table, preferences_table
from instruct.synth.answer import Answer, AnswerConfig
from instruct.synth.backtranslate import Backtranslate, BacktranslateConfig
from instruct.synth.client import ClientConfig, LLMClient, public_url, redact
from instruct.synth.cot import ChainOfThought, CotConfig, load_cot_items
from instruct.synth.dialogue import DialogueConfig, Dialogues, load_seeds
from instruct.synth.evol_instruct import EvolInstruct, EvolInstructConfig
from instruct.synth.preference import Preference, PreferenceConfig
from instruct.synth.self_instruct import SelfInstruct, SelfInstructConfig, SynthOutput, load_seed_tasks
from instruct.synth.sources import load_documents, load_prompts

log = logging.getLogger("instruct.synth")

DEFAULT_SEED_TASKS = resources.seed_tasks()
DEFAULT_DIALOGUE_SEEDS = resources.dialogue_topics()


@dataclass
class ServeConfig:
    """The model served locally when no endpoint is configured."""

    model: str | None = None  # HF folder or .gguf; None: the embedded SmolLM2-135M-Instruct
    adapter: str | None = None
    threads: int | None = None  # CPU threads for generation (default: torch's)


@dataclass
class SynthRecipe:
    method: Literal["self-instruct", "evol-instruct", "backtranslate", "answer", "preference", "cot",
                    "dialogue"] = "self-instruct"
    seed_tasks: str | None = None  # Self-Instruct seeds (default: the shipped seed tasks)
    input: list[str] = field(default_factory=list)  # Evol-Instruct: EXAMPLE shards / chat JSONL
    documents: list[str] = field(default_factory=list)  # backtranslate: DOCUMENT shards / JSONL
    instructions: list[str] = field(default_factory=list)  # answer, preference: EXAMPLE shards / prompt JSONL
    data: str | None = None  # cot: labeled rows or EXAMPLE rows to write rationales for
    seeds: str | None = None  # dialogue: seed topics (text lines, JSONL) or DOCUMENT shards (default: ours)
    # self-instruct: instructions to keep; backtranslate: pairs to keep; evol-instruct, answer, preference:
    # inputs to use (default 100 each, DEFAULT_NUM); cot / dialogue: items / seeds to use (default: all)
    num: int | None = None
    output: str = "out/synth"
    seed: int = 42
    shard_size: int = 50_000
    progress: bool = True
    client: ClientConfig = field(default_factory=ClientConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    self_instruct: SelfInstructConfig = field(default_factory=SelfInstructConfig)
    evol_instruct: EvolInstructConfig = field(default_factory=EvolInstructConfig)
    backtranslate: BacktranslateConfig = field(default_factory=BacktranslateConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    cot: CotConfig = field(default_factory=CotConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)


@dataclass(frozen=True)
class Method:
    """How `instruct synth` runs one method: its recipe section, what it reads, the flag that names that
    input, and the schema it writes. The method class is `cls(section, client, seed, progress)` with
    `async run(inputs, num) -> SynthOutput`."""

    cls: type
    section: str
    inputs: Callable[[SynthRecipe], tuple[list, Counter]]  # (inputs, input rows skipped by reason)
    input_key: str | None = None  # recipe key (and --flag) that must be given
    schema: pa.Schema = EXAMPLE_SCHEMA


def _seed_tasks(recipe: SynthRecipe) -> tuple[list, Counter]:
    return load_seed_tasks(recipe.seed_tasks or DEFAULT_SEED_TASKS), Counter()


def _examples(recipe: SynthRecipe) -> tuple[list, Counter]:
    """Evol-Instruct's inputs: conversations without their answer (the first user turn is evolved)."""
    prompts, skipped = load_prompts(recipe.input)
    return [{"id": p["id"], "messages": p["prompt"]} for p in prompts], skipped


def _documents(recipe: SynthRecipe) -> tuple[list, Counter]:
    return load_documents(recipe.documents, recipe.backtranslate.text_field), Counter()


METHODS: dict[str, Method] = {
    "self-instruct": Method(SelfInstruct, "self_instruct", _seed_tasks),
    "evol-instruct": Method(EvolInstruct, "evol_instruct", _examples, "input"),
    "backtranslate": Method(Backtranslate, "backtranslate", _documents, "documents"),
    "answer": Method(Answer, "answer", lambda r: load_prompts(r.instructions), "instructions"),
    "preference": Method(Preference, "preference", lambda r: load_prompts(r.instructions), "instructions",
                         PREFERENCE_SCHEMA),
    "cot": Method(ChainOfThought, "cot", lambda r: (load_cot_items(r.data, r.cot, r.seed), Counter()), "data"),
    "dialogue": Method(Dialogues, "dialogue",
                       lambda r: (load_seeds(r.seeds or str(DEFAULT_DIALOGUE_SEEDS)), Counter())),
}


DEFAULT_NUM = {"self-instruct": 100, "evol-instruct": 100, "backtranslate": 100, "answer": 100,
               "preference": 100}  # cot and dialogue use every input by default


def load_synth_recipe(data: dict[str, Any], overrides: list[str], where: str = "recipe") -> SynthRecipe:
    """The typed recipe, checked across fields."""
    data = apply_overrides(copy.deepcopy(data), overrides)
    recipe = from_dict(SynthRecipe, data, where=where)
    for method in METHODS.values():
        _merge_param_defaults(getattr(recipe, method.section))
    if recipe.num is not None and recipe.num < 1:
        raise ConfigError(f"{where}: num must be at least 1, got {recipe.num}")
    if recipe.client.concurrency < 1:
        raise ConfigError(f"{where}: client.concurrency must be at least 1")
    if recipe.method == "preference":
        recipe.preference.judge_kind()  # a bad judge name fails before any endpoint starts
    if recipe.method in ("answer", "preference"):
        least = 2 if recipe.method == "preference" else 1  # a pair needs two answers
        if getattr(recipe, recipe.method).samples < least:
            raise ConfigError(f"{where}: {recipe.method}.samples must be at least {least}")
    key = METHODS[recipe.method].input_key
    if key and not getattr(recipe, key):
        raise ConfigError(f"{recipe.method} needs --{key} PATH ({_INPUT_HELP[key]})")
    return recipe


_INPUT_HELP = {"input": "EXAMPLE shards or chat JSONL to evolve",
               "data": "labeled rows with cot.templates=NAME, or EXAMPLE rows",
               "documents": "DOCUMENT shards or JSONL with a 'text' field",
               "instructions": "EXAMPLE shards, chat JSONL or JSONL with a 'prompt' field"}


def _merge_param_defaults(section: Any) -> None:
    """`*_params` given in a recipe or override update the paper's defaults instead of replacing them;
    a key set to null is not sent."""
    for spec in dataclasses.fields(section):
        if spec.name.endswith("_params") and spec.default_factory is not dataclasses.MISSING:
            setattr(section, spec.name, {**spec.default_factory(), **getattr(section, spec.name)})


@contextmanager
def endpoint(recipe: SynthRecipe) -> Iterator[tuple[str, str | None, bool]]:
    """(base_url, model, served_here): the configured endpoint, else the local model served for this run."""
    base_url = recipe.client.resolved_base_url()
    if base_url:
        yield base_url, recipe.client.model, False
        return
    from instruct.serve.engines import TransformersEngine
    from instruct.serve.server import serve_in_thread

    engine = TransformersEngine(recipe.serve.model, recipe.serve.adapter, threads=recipe.serve.threads)
    with serve_in_thread(engine) as server:
        print(f"no endpoint configured: serving {engine.model_name} on {server.base_url} for this run",
              file=sys.stderr)
        yield server.base_url, recipe.client.model or engine.model_name, True


def run_synth(recipe: SynthRecipe, recipe_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate, write shards + manifest, and return the manifest."""
    output = Path(recipe.output)
    started = time.perf_counter()
    inputs, skipped = METHODS[recipe.method].inputs(recipe)
    with endpoint(recipe) as (base_url, model, served):
        cache = recipe.client.cache or str(output / "cache" / "requests.jsonl")
        client_config = dataclasses.replace(recipe.client, base_url=base_url, model=model, cache=cache,
                                            endpoint_id="served-locally" if served else None)
        result, usage, model = asyncio.run(_generate(recipe, client_config, inputs))
    for reason, count in skipped.items():
        result.reject("input", reason, count=count)
    client_config.model = model
    return write_synth_outputs(recipe, recipe_data, client_config, served, result, usage, time.perf_counter() - started)


async def _generate(recipe: SynthRecipe, config: ClientConfig, inputs: list):
    progress = _progress_factory(recipe.progress)
    spec = METHODS[recipe.method]
    async with LLMClient(config) as client:
        if client.config.model is None:
            client.config.model = await client.default_model()
        method = spec.cls(getattr(recipe, spec.section), client, recipe.seed, progress)
        result = await method.run(inputs, recipe.num if recipe.num is not None else DEFAULT_NUM.get(recipe.method))
        return result, client.usage, client.config.model




def _progress_factory(enabled: bool):
    from functools import partial

    from instruct.progress import progress_bar

    return partial(progress_bar, enabled) if enabled else None


def write_synth_outputs(recipe: SynthRecipe, recipe_data: dict[str, Any] | None, client: ClientConfig, served: bool,
                  result: SynthOutput, usage: Any, seconds: float) -> dict[str, Any]:
    from instruct.provenance import package_versions

    output = Path(recipe.output)
    secret = client.resolved_key()
    schema = METHODS[recipe.method].schema
    writer = ShardWriter(output / "shards", "synth", recipe.shard_size, schema)
    writer.write((preferences_table if schema is PREFERENCE_SCHEMA else examples_table)(result.rows))
    written = writer.close()
    for stale in set(shard_paths(output / "shards")) - set(written):  # from an earlier, larger run
        stale.unlink()
    with atomic_path(output / "rejected.jsonl") as tmp:
        tmp.write_text("".join(redact(json.dumps(r, ensure_ascii=False, default=str), secret) + "\n"
                               for r in result.rejected), encoding="utf-8")
    config = to_dict(recipe)
    config["client"] = client.public()
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "synth",
        "method": recipe.method,
        "schema": "PREFERENCE" if schema is PREFERENCE_SCHEMA else "EXAMPLE",
        "endpoint": {"base_url": public_url(client.base_url), "model": client.model, "served_locally": served},
        "config": config,
        "recipe": _without_keys(recipe_data),
        "versions": package_versions(),
        "counts": {"written": len(result.rows), "rejected_records": len(result.rejected),
                   "stages": {stage: dict(sorted(c.items())) for stage, c in result.counts.items()},
                   **({"outcomes": {name: dict(sorted(c.items())) for name, c in result.outcomes.items()}}
                      if result.outcomes else {})},
        "usage": usage.as_dict(),
        **{f"{name}_usage": extra for name, extra in result.extra_usage.items()},
        "shards": [p.name for p in written],
        "seconds": round(seconds, 3),
    }
    manifest = json.loads(redact(json.dumps(manifest, default=str), secret))
    write_json(manifest, output / "manifest.json")
    return manifest


def _without_keys(data: Any) -> Any:
    """A recipe as given, with any api_key value masked."""
    if isinstance(data, dict):
        return {k: ("<redacted>" if k == "api_key" and v else _without_keys(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_without_keys(v) for v in data]
    return data
