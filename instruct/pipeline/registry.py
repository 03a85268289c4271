"""Find steps by the name a recipe uses (`gopher_quality`, `minhash_dedup`, ...).

One explicit table, like the CLI's commands and the readers: a lookup imports only the module of
the step it names (so `instruct build` never imports the synth client or a click CLI), and a step
missing from the table is caught by tests/test_registry.py rather than skipped in silence. A
recipe may also name any importable class as `package.module:ClassName`, so users add steps
without touching this package.
"""
from __future__ import annotations

import importlib
from typing import Any

from instruct.config import ConfigError
from instruct.pipeline.step import Step

# recipe name -> "module:class"
STEPS = {
    "c4": "instruct.filters.c4:C4",
    "code_quality": "instruct.filters.code_quality:CodeQuality",
    "fineweb": "instruct.filters.fineweb:FineWeb",
    "gopher_quality": "instruct.filters.gopher:GopherQuality",
    "gopher_repetition": "instruct.filters.gopher:GopherRepetition",
    "keyword_blocklist": "instruct.filters.blocklist:KeywordBlocklist",
    "url_blocklist": "instruct.filters.blocklist:UrlBlocklist",
    "language": "instruct.filters.language:Language",
    "sentence_dedup": "instruct.filters.sentence_dedup:SentenceDedup",
    "sentence_dedup_strip": "instruct.filters.sentence_dedup:SentenceDedupStrip",
    "exact_dedup": "instruct.dedup.exact:ExactDedup",
    "minhash_dedup": "instruct.dedup.minhash:MinHashDedup",
    "decontaminate": "instruct.dedup.decontaminate:Decontaminate",
    "pii": "instruct.pii.step:PiiScrub",
    "template": "instruct.templates.step:TemplateStep",
    "quality_classifier": "instruct.quality.steps:QualityClassifierStep",
    "perplexity": "instruct.quality.steps:PerplexityStep",
    "perplexity_buckets": "instruct.quality.steps:PerplexityBuckets",
    "pair_answer": "instruct.quality.pairs:PairAnswer",
    "pair_language": "instruct.quality.pairs:PairLanguage",
    "pair_length": "instruct.quality.pairs:PairLength",
    "pair_refusal": "instruct.quality.pairs:PairRefusal",
    "pair_repetition": "instruct.quality.pairs:PairRepetition",
    "pair_judge": "instruct.quality.judge:PairJudge",
}


def _import(spec: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def available_steps() -> dict[str, type[Step]]:
    """Every registered step by name (imports all their modules: for listings and tests)."""
    return {name: _import(spec) for name, spec in STEPS.items()}


def step_class(name: str) -> type[Step]:
    if ":" in name:
        try:
            return _import(name)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"step {name!r}: cannot import ({error})") from None
    if name not in STEPS:
        raise ConfigError(f"unknown step {name!r}; available: {', '.join(sorted(STEPS))}")
    return _import(STEPS[name])


def make_step(name: str, params: dict[str, Any] | None) -> Step:
    return step_class(name)(**(params or {}))
