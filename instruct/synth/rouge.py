"""Exact ROUGE-L F (as `rouge_score` computes it, default tokenizer, no stemmer) and a novelty index that
finds every stored text above a ROUGE-L threshold without comparing against all of them.

Why it is exact and fast:
* LCS length by the bit-parallel algorithm (Allison-Dix / Hyyrö): one big-int step per token.
* Candidates by prefix filtering on token multisets. LCS <= multiset overlap, so F = 2·LCS/(m+n) > θ
  needs overlap > θ(m+n)/2, which also bounds n to a window around m. Each text is indexed by the
  `n - τ + 1` rarest elements of its multiset (token, occurrence) under one fixed order; two texts with
  overlap >= τ must share an element of those prefixes. Every candidate is then scored exactly, so the
  answer equals the all-pairs loop. The rarity order is frozen between rebuilds (when the index doubles),
  which keeps it one fixed total order, as the prefix lemma requires.
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


def rouge_l_f(target: list[str], prediction: list[str]) -> float:
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
        self._postings: dict[tuple, list[int]] = {}
        self._frozen_df: dict[str, int] = {}
        self._df: Counter = Counter()
        self._rebuild_at = 64
        self.comparisons = 0  # exact LCS computations, for benchmarks
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self.tokens)

    # -- bounds ------------------------------------------------------------------------------------
    def _needed_overlap(self, m: int, n: int) -> int:
        """A lower bound (never above the truth) on the overlap that F > threshold requires."""
        return max(1, math.floor(self.threshold * (m + n) / 2 - 1e-9))

    def _min_partner(self, m: int) -> int:
        """The shortest partner length n for which F > threshold is reachable (overlap <= min(m, n))."""
        n = 1
        while n < m and n < self._needed_overlap(m, n):
            n += 1
        return n

    def _max_partner(self, m: int) -> int:
        n = m
        while m >= self._needed_overlap(m, n + 1):
            n += 1
        return n

    def _prefix(self, tokens: list[str]) -> list[tuple]:
        m = len(tokens)
        size = m - self._needed_overlap(m, self._min_partner(m)) + 1
        seen: Counter = Counter()
        elements = []
        for token in tokens:
            seen[token] += 1
            elements.append((token, seen[token]))
        elements.sort(key=lambda e: (self._frozen_df.get(e[0], 0), e[0], e[1]))
        return elements[:max(size, 1)]

    # -- index -------------------------------------------------------------------------------------
    def add(self, text: str) -> int:
        """Store a text; returns its position."""
        tokens = tokenize(text)
        position = len(self.tokens)
        self.texts.append(text)
        self.tokens.append(tokens)
        self._df.update(set(tokens))
        if len(self.tokens) >= self._rebuild_at:
            self._rebuild()
        elif tokens:
            for element in self._prefix(tokens):
                self._postings.setdefault(element, []).append(position)
        return position

    def _rebuild(self) -> None:
        self._frozen_df = dict(self._df)
        self._rebuild_at = 2 * len(self.tokens)
        self._postings = {}
        for position, tokens in enumerate(self.tokens):
            for element in self._prefix(tokens) if tokens else ():
                self._postings.setdefault(element, []).append(position)

    def candidates(self, tokens: list[str]) -> set[int]:
        """Positions of stored texts that could exceed the threshold against `tokens`."""
        if not tokens:
            return set()
        m = len(tokens)
        low, high = self._min_partner(m), self._max_partner(m)
        found: set[int] = set()
        for element in self._prefix(tokens):
            for position in self._postings.get(element, ()):
                if low <= len(self.tokens[position]) <= high:
                    found.add(position)
        return found

    def most_similar(self, text: str, k: int = 10) -> list[tuple[int, float]]:
        """Up to k (position, F) among the candidates, best first; every text above the threshold is in it."""
        tokens = tokenize(text)
        scored = []
        for position in self.candidates(tokens):
            self.comparisons += 1
            scored.append((position, rouge_l_f(tokens, self.tokens[position])))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored[:k]

    def max_similarity(self, text: str) -> tuple[float, int | None]:
        """Highest F above-threshold candidate (0.0, None when no candidate)."""
        best = self.most_similar(text, k=1)
        return (best[0][1], best[0][0]) if best else (0.0, None)
