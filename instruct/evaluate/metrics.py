"""Scores and their uncertainty: exact match, ROUGE-L, and bootstrap confidence intervals."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

import numpy as np

from instruct.synth.rouge import rouge_l_tokens

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str, target: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(target))


def answer_rouge_l(prediction: str, target: str) -> float:
    """ROUGE-L F1 of a model's answer against the reference, over SQuAD-normalised words (two empty answers: 1)."""
    a, b = normalize_answer(prediction).split(), normalize_answer(target).split()
    if not a or not b:
        return float(a == b)
    return rouge_l_tokens(b, a)


@dataclass
class Estimate:
    """A mean with a percentile-bootstrap 95 % confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci95_low": self.low, "ci95_high": self.high, "n": self.n}

    def __str__(self) -> str:
        return f"{100 * self.mean:5.1f} [{100 * self.low:5.1f}, {100 * self.high:5.1f}]"


def bootstrap(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean and 95 % CI; for paired differences pass the per-item differences."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(values.mean()), float(low), float(high), int(values.size))
