"""`pair_judge`: an LLM scores each instruction pair for complexity and quality (Deita style, 1-6).

Prompts follow Deita's scorers (Liu et al. 2023, "What Makes Good Data for Alignment?"), with the
scale spelled out so that any chat model can answer them; distilabel's ComplexityScorer and
QualityScorer use the same two questions. Requests go through the synth client
(`instruct.synth.client.LLMClient`): bounded concurrency, retries and an on-disk cache, so a killed
build resumes without paying for any answered request twice. Scores land in meta["pair_judge"]
({complexity, quality}, None when the reply held no score), thresholds are optional: by default the
step only scores, and a finished build can be re-thresholded from meta.
"""
from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from instruct.config import ConfigError
from instruct.pipeline.step import Step, StepOutput, merge_meta, replace_column
from instruct.quality.pairs import pair_texts
from instruct.synth.client import ClientConfig, LLMClient, Request

COMPLEXITY_PROMPT = ("You are a helpful assistant. Please identify the complexity score of the following user query "
                     "on a scale from 1 (very simple) to 6 (very complex). Reply with the number only.\n"
                     "##Query: {instruction}\n##Complexity: ")
QUALITY_PROMPT = ("You are a helpful assistant. Please identify the quality score of the Response corresponding to "
                  "the Question, on a scale from 1 (useless or wrong) to 6 (excellent). Reply with the number only.\n"
                  "#Question#:\n{instruction}\n#Response#:\n{answer}\n##Quality: ")
SCORE_RE = re.compile(r"\b([1-6])(?:\.\d+)?\b")


class PairJudge(Step):
    name = "pair_judge"

    @dataclass
    class Config:
        base_url: str | None = None  # default: OPENAI_BASE_URL
        model: str | None = None  # default: the endpoint's first model
        cache: str = "out/pair_judge/requests.jsonl"  # the request cache: re-runs pay nothing twice
        concurrency: int = 8
        max_tokens: int = 8
        complexity_prompt: str = COMPLEXITY_PROMPT
        quality_prompt: str = QUALITY_PROMPT
        min_complexity: float | None = None  # drop below (None: only score)
        min_quality: float | None = None
        drop_unscored: bool = False  # a reply without a score: keep the row (counted either way)

    def setup(self) -> None:
        self.client_config = ClientConfig(base_url=self.config.base_url, model=self.config.model,
                                          concurrency=self.config.concurrency, cache=self.config.cache)
        if not self.client_config.resolved_base_url():
            raise ConfigError(f"{self.name}: no endpoint; set base_url or OPENAI_BASE_URL "
                              "(`instruct serve` serves the embedded model)")
        Path(self.config.cache).parent.mkdir(parents=True, exist_ok=True)

    def requests(self, instruction: str, answer: str) -> list[Request]:
        params = {"max_tokens": self.config.max_tokens, "temperature": 0.0}
        return [Request(messages=[{"role": "user", "content": prompt.format(instruction=instruction, answer=answer)}],
                        params=params)
                for prompt in (self.config.complexity_prompt, self.config.quality_prompt)]

    async def _complete(self, requests: list[Request]) -> list[str | None]:
        async with LLMClient(self.client_config) as client:
            responses = await client.complete_many(requests)
        return [r.text if r.ok else None for r in responses]

    def apply(self, table: pa.Table) -> StepOutput:
        pairs = pair_texts(table)
        requests = [r for pair in pairs if pair for r in self.requests(*pair)]
        replies = iter(asyncio.run(self._complete(requests)) if requests else [])
        reasons, metas, counters = [], [], {"scored": 0, "unscored": 0, "no_pair": 0}
        for pair, meta in zip(pairs, table.column("meta").to_pylist()):
            if pair is None:
                reasons.append("no_pair")
                metas.append(meta)
                counters["no_pair"] += 1
                continue
            complexity, quality = (score(next(replies)) for _ in range(2))
            scored = complexity is not None and quality is not None
            counters["scored" if scored else "unscored"] += 1
            reasons.append(self.reason(complexity, quality, scored))
            metas.append(merge_meta(meta, {self.name: {"complexity": complexity, "quality": quality}}))
        return StepOutput(replace_column(table, "meta", metas), reasons, Counter(counters))

    def reason(self, complexity: float | None, quality: float | None, scored: bool) -> str | None:
        c = self.config
        if not scored:
            return "unscored" if c.drop_unscored else None
        if c.min_complexity is not None and complexity < c.min_complexity:
            return "low_complexity"
        if c.min_quality is not None and quality < c.min_quality:
            return "low_quality"
        return None


def score(reply: str | None) -> float | None:
    """The first 1-6 score in a reply ('5', 'Score: 4', '3.5' -> 3), None without one."""
    found = SCORE_RE.search(reply or "")
    return float(found.group(1)) if found else None
