"""Exact ROUGE-L F (as `rouge_score` computes it, default tokenizer, no stemmer) and a novelty index that
finds every stored text above a ROUGE-L threshold without comparing against all of them.

Why it is exact and fast:
* LCS length by the bit-parallel algorithm (Allison-Dix / Hyyrö): one big-int step per token.
* Candidates by prefix filtering on token multisets, elements being (token, occurrence number).
  LCS <= multiset overlap, so F = 2·LCS/(m+n) > θ needs overlap >= τ(m, n), which also bounds n to a
  window around m. Every stored text is indexed under all its elements; a query probes only its
  `m - τmin + 1` rarest elements: if the overlap reaches τmin, one of them must be shared (the other
  τmin - 1 elements cannot hold it all). Counting the probe hits per candidate gives a second bound,
  overlap <= hits + (m - probed), which drops most candidates before the exact LCS. Every surviving
  candidate is scored exactly, so decisions equal the all-pairs loop's; rarity only affects speed.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"^[a-z0-9]+$")


def tokenize(text: str) -> list[str]:
    """rouge_score's default tokenizer: lowercase, non-[a-z0-9] to spaces, split, keep valid tokens."""
    return [t for t in _SPACES.split(_NON_ALNUM.sub(" ", text.lower())) if _VALID.match(t)]


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, exact)."""
    if not a or not b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    masks: dict = {}
    for position, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(a)) - 1
    row = full
    for token in b:
        match = masks.get(token)
        if match:
            low = row & match
            row = ((row + low) | (row - low)) & full
    return len(a) - bin(row).count("1")


def rouge_l_tokens(target: list[str], prediction: list[str]) -> float:
    """ROUGE-L F-measure with rouge_score's exact float arithmetic (so thresholds decide identically)."""
    if not target or not prediction:
        return 0.0
    lcs = lcs_length(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


class RougeIndex:
    """Texts added so far, queryable for their highest ROUGE-L F against a new text."""

    def __init__(self, threshold: float = 0.7, texts: Iterable[str] = ()):
        if not 0 < threshold <= 1:
            raise ValueError(f"ROUGE-L threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.texts: list[str] = []
        self.tokens: list[list[str]] = []
        self._postings: dict[tuple[str, int], list[int]] = {}
        self._df: Counter = Counter()
        self.comparisons = 0  # exact LCS computations, for benchmarks
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self.tokens)

    def _needed_overlap(self, m: int, n: int) -> int:
        """The least overlap L with 2L/(m+n) > threshold, less a hair so float rounding never excludes a pair."""
        return max(1, math.floor((self.threshold - 1e-9) * (m + n) / 2) + 1)

    def _partner_lengths(self, m: int) -> tuple[int, int]:
        """The range of lengths n for which F > threshold is reachable (the overlap is at most min(m, n))."""
        low = 1
        while low < m and low < self._needed_overlap(m, low):
            low += 1
        high = m
        while m >= self._needed_overlap(m, high + 1):
            high += 1
        return low, high

    @staticmethod
    def _elements(tokens: list[str]) -> list[tuple[str, int]]:
        seen: Counter = Counter()
        elements = []
        for token in tokens:
            seen[token] += 1
            elements.append((token, seen[token]))
        return elements

    def add(self, text: str) -> int:
        """Store a text; returns its position."""
        tokens = tokenize(text)
        position = len(self.tokens)
        self.texts.append(text)
        self.tokens.append(tokens)
        self._df.update(set(tokens))
        for element in self._elements(tokens):
            self._postings.setdefault(element, []).append(position)
        return position

    def candidates(self, tokens: list[str]) -> list[int]:
        """Positions of stored texts that could exceed the threshold against `tokens`."""
        if not tokens:
            return []
        m = len(tokens)
        low, high = self._partner_lengths(m)
        smallest = self._needed_overlap(m, low)
        elements = sorted(self._elements(tokens), key=lambda e: (self._df.get(e[0], 0), e))
        probed = elements[:m - smallest + 1]
        hits: Counter = Counter()
        for element in probed:
            hits.update(self._postings.get(element, ()))
        unprobed = m - len(probed)
        found = []
        for position, count in hits.items():
            n = len(self.tokens[position])
            if low <= n <= high and count + unprobed >= self._needed_overlap(m, n):
                found.append(position)
        return found

    def most_similar(self, text: str, k: int = 10) -> list[tuple[int, float]]:
        """Up to k (position, F) among the candidates, best first; every text above the threshold is in it."""
        tokens = tokenize(text)
        scored = []
        for position in self.candidates(tokens):
            self.comparisons += 1
            scored.append((position, rouge_l_tokens(tokens, self.tokens[position])))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored[:k]

    def max_similarity(self, text: str) -> tuple[float, int | None]:
        """Highest F above-threshold candidate (0.0, None when no candidate)."""
        best = self.most_similar(text, k=1)
        return (best[0][1], best[0][0]) if best else (0.0, None)
