"""Pipeline steps: `quality_classifier`, `perplexity` and `perplexity_buckets`.

Models load in `setup()`, which the runner calls once per worker process; a step pickles as
its config only. Scores go into `meta[step name]` so a user can re-threshold without rescoring.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instruct.config import ConfigError
from instruct.pipeline.step import Decision, GlobalStep, Step, StepOutput, merge_meta, replace_column

BUCKETS = ("head", "middle", "tail")  # CCNet's names, from most to least fluent


def _check_buckets(where: str, cutoffs: list[float], drop_buckets: list[str]) -> None:
    if len(cutoffs) != 2 or cutoffs[0] > cutoffs[1]:
        raise ConfigError(f"{where}: expected two ascending cutoffs (head | middle | tail), got {cutoffs}")
    unknown = set(drop_buckets) - set(BUCKETS)
    if unknown:
        raise ConfigError(f"{where}: drop_buckets {sorted(unknown)} not among {BUCKETS}")


def _with_scores(step: Step, table: pa.Table, scores: list[dict]) -> pa.Table:
    metas = [merge_meta(meta, {step.name: s}) for meta, s in zip(table.column("meta").to_pylist(), scores)]
    return replace_column(table, "meta", metas)


class QualityClassifierStep(Step):
    """Score P(good) with a trained classifier; drop rows under the threshold."""

    name = "quality_classifier"

    @dataclass
    class Config:
        model: str  # a file written by `instruct classify train`, or `builtin:web` (trained here, cached)
        threshold: float | None = None  # default: the threshold stored in the model
        per_source: dict[str, float] = field(default_factory=dict)  # source -> threshold
        drop: bool = True  # false: only record the score
        keep_paragraph_words: int | None = None  # keep a page with this many words in paragraphs whatever
        # its score (filters/prose.py): the classifier then judges pages made of one item per line

    def setup(self) -> None:
        from instruct.quality.builtin import BUILTIN_PREFIX, builtin_classifier
        from instruct.quality.classifier import QualityClassifier

        model = self.config.model
        self.classifier = (builtin_classifier(model[len(BUILTIN_PREFIX):]) if model.startswith(BUILTIN_PREFIX)
                           else QualityClassifier.load(model))

    def threshold_for(self, source: str | None) -> float:
        default = self.config.threshold if self.config.threshold is not None else self.classifier.threshold
        return self.config.per_source.get(source or "", default)

    def has_paragraphs(self, text: str | None) -> bool:
        from instruct.filters.prose import paragraph_words

        limit = self.config.keep_paragraph_words
        return limit is not None and paragraph_words(text or "") >= limit

    def apply(self, table: pa.Table) -> StepOutput:
        texts = table.column("text").to_pylist()
        scores = self.classifier.scores(texts)
        sources = table.column("source").to_pylist()
        reasons = [("low_quality" if self.config.drop and score < self.threshold_for(source)
                    and not self.has_paragraphs(text) else None)
                   for score, source, text in zip(scores.tolist(), sources, texts)]
        out = _with_scores(self, table, [{"score": round(float(s), 6)} for s in scores])
        return StepOutput(out, reasons)


class PerplexityStep(Step):
    """CCNet-style LM perplexity: fixed thresholds and/or bucket cutoffs, per source."""

    name = "perplexity"

    @dataclass
    class Config:
        model: str | None = None  # HF folder or .gguf; default: the embedded SmolLM2-135M-Instruct
        max_tokens: int = 256  # score the first N tokens
        batch_size: int = 16
        threads: int = 0  # torch threads per worker (0: torch's default)
        device: str = "auto"  # cuda when available, else cpu
        max_perplexity: float | None = None  # drop above this, for sources not in per_source
        per_source: dict[str, float] = field(default_factory=dict)  # source -> max perplexity
        buckets: dict[str, list[float]] = field(default_factory=dict)  # source or "*" -> [head_max, middle_max]
        drop_buckets: list[str] = field(default_factory=list)  # e.g. [tail]
        min_tokens: int = 2  # shorter texts get no score and are kept

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        for source, cutoffs in self.config.buckets.items():
            _check_buckets(f"{self.name}.buckets.{source}", cutoffs, self.config.drop_buckets)

    def setup(self) -> None:
        from instruct.quality.lm import PerplexityScorer

        c = self.config
        self.scorer = PerplexityScorer(c.model, c.max_tokens, c.batch_size, c.threads, c.device, c.min_tokens)

    def judge(self, perplexity: float, source: str) -> tuple[str | None, dict]:
        if math.isnan(perplexity):
            return None, {"perplexity": None}
        scores: dict = {"perplexity": round(perplexity, 3)}
        cutoffs = self.config.buckets.get(source, self.config.buckets.get("*"))
        if cutoffs:
            scores["bucket"] = BUCKETS[int(np.searchsorted(cutoffs, perplexity, side="left"))]
            if scores["bucket"] in self.config.drop_buckets:
                return f"bucket_{scores['bucket']}", scores
        limit = self.config.per_source.get(source, self.config.max_perplexity)
        if limit is not None and perplexity > limit:
            return "high_perplexity", scores
        return None, scores

    def apply(self, table: pa.Table) -> StepOutput:
        values = self.scorer.perplexities(table.column("text").to_pylist())
        judged = [self.judge(float(v), s or "") for v, s in zip(values, table.column("source").to_pylist())]
        return StepOutput(_with_scores(self, table, [s for _, s in judged]), [r for r, _ in judged])


class PerplexityBuckets(GlobalStep):
    """Percentile buckets per source over the whole run (needs a `perplexity` step before it).

    CCNet splits each language into head/middle/tail at perplexity percentiles; computing the
    cutoffs over all shards (not per batch) keeps the split independent of sharding.
    """

    name = "perplexity_buckets"
    group_by = "source"

    @dataclass
    class Config:
        percentiles: list[float] = field(default_factory=lambda: [33.3, 66.6])  # head | middle | tail
        drop_buckets: list[str] = field(default_factory=lambda: ["tail"])
        min_docs: int = 100  # sources with fewer scored documents are not bucketed
        score_step: str = "perplexity"  # meta key holding the scores

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        _check_buckets(f"{self.name}.percentiles", self.config.percentiles, self.config.drop_buckets)

    def signatures(self, table: pa.Table) -> pa.Table:
        values = []
        for meta in table.column("meta").to_pylist():
            value = (json.loads(meta) if meta else {}).get(self.config.score_step, {}).get("perplexity")
            values.append(math.nan if value is None else float(value))
        return pa.table({"id": table.column("id"), "source": pc.fill_null(table.column("source"), ""),
                         "perplexity": pa.array(values, pa.float64())})

    def reduce(self, group: pa.Table) -> Decision:
        """One source's documents: its percentile cutoffs and each scored document's bucket."""
        source = group.column("source")[0].as_py()
        values = group.column("perplexity").to_numpy(zero_copy_only=False)
        scored = ~np.isnan(values)
        if scored.sum() < self.config.min_docs:
            return Decision(drop={}, counters=Counter({f"unbucketed_{source}": int(scored.sum())}))
        edges = np.percentile(values[scored], self.config.percentiles)
        names = [BUCKETS[int(b)] for b in np.searchsorted(edges, values[scored], side="left")]
        ids = np.asarray(group.column("id").to_pylist(), dtype=object)[scored]
        drop = {row_id: f"bucket_{name}" for row_id, name in zip(ids, names) if name in self.config.drop_buckets}
        return Decision(drop=drop, counters=Counter(names),
                        report={"cutoffs": {source: [round(float(e), 3) for e in edges]}})
