"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", app. A1).

Defaults are the paper's thresholds as implemented in datatrove's `GopherQualityFilter` and
`GopherRepetitionFilter`; reason names follow datatrove's so counts can be compared. Every
score is computed (not only up to the first failing rule) and stored in meta, so a user can
re-threshold a finished run without recomputing anything.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from instruct.filters.prose import prose_text
from instruct.filters.text_stats import (
    ALPHA_RE,
    GOPHER_STOP_WORDS,
    above,
    below,
    duplicate_ngram_chars,
    duplicates,
    first_failure,
    ratio,
    rounded,
    tokenize,
    top_ngram_chars,
)
from instruct.pipeline.step import DocumentFilter

BULLET_LINE_RE = re.compile(r"^[ \t]*[•\-*‣◦]", re.MULTILINE)
ELLIPSIS_LINE_RE = re.compile(r"(?:\.\.\.|…)[ \t]*$", re.MULTILINE)
PARAGRAPH_RE = re.compile(r"\n{2,}")
LINES_RE = re.compile(r"\n+")


class GopherQuality(DocumentFilter):
    """Drop documents whose word statistics look unlike natural prose (Gopher table A1)."""

    name = "gopher_quality"

    @dataclass
    class Config:
        """Rae et al. 2021, app. A1; datatrove GopherQualityFilter defaults. None disables a rule."""

        min_doc_words: int | None = 50
        max_doc_words: int | None = 100_000
        min_avg_word_length: float | None = 3.0
        max_avg_word_length: float | None = 10.0
        max_symbol_word_ratio: float | None = 0.1  # "#" and "..." per token
        max_bullet_lines_ratio: float | None = 0.9
        max_ellipsis_lines_ratio: float | None = 0.3
        min_alpha_words_ratio: float | None = 0.8  # words with at least one letter
        min_stop_words: int | None = 2
        stop_words: list[str] = field(default_factory=lambda: list(GOPHER_STOP_WORDS))
        prose_only: bool = False  # statistics on prose lines only (technical pages; see filters/prose.py)

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self._stop_words = frozenset(word.lower() for word in self.config.stop_words)  # from config: no setup

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        c = self.config
        if c.prose_only:
            text = prose_text(text)
        tokens = tokenize(text)
        words, n_tokens = tokens.words, tokens.n_tokens
        n_lines = len(text.splitlines()) or 1
        scores = {
            "words": len(words),
            "avg_word_length": ratio(sum(map(len, words)), len(words)),
            "hash_ratio": ratio(text.count("#"), n_tokens),
            "ellipsis_ratio": ratio(text.count("...") + text.count("…"), n_tokens),
            "bullet_lines_ratio": ratio(len(BULLET_LINE_RE.findall(text)), n_lines),
            "ellipsis_lines_ratio": ratio(len(ELLIPSIS_LINE_RE.findall(text)), n_lines),
            "alpha_words_ratio": ratio(sum(1 for _ in filter(ALPHA_RE.search, words)), n_tokens),
            "stop_words": sum(map(self._stop_words.__contains__, map(str.lower, words))),
        }
        reason = first_failure([
            ("gopher_short_doc", below(scores["words"], c.min_doc_words)),
            ("gopher_long_doc", above(scores["words"], c.max_doc_words)),
            ("gopher_below_avg_threshold", below(scores["avg_word_length"], c.min_avg_word_length)),
            ("gopher_above_avg_threshold", above(scores["avg_word_length"], c.max_avg_word_length)),
            ("gopher_too_many_hashes", above(scores["hash_ratio"], c.max_symbol_word_ratio)),
            ("gopher_too_many_ellipsis", above(scores["ellipsis_ratio"], c.max_symbol_word_ratio)),
            ("gopher_too_many_bullets", above(scores["bullet_lines_ratio"], c.max_bullet_lines_ratio)),
            ("gopher_too_many_end_ellipsis", above(scores["ellipsis_lines_ratio"], c.max_ellipsis_lines_ratio)),
            ("gopher_below_alpha_threshold", below(scores["alpha_words_ratio"], c.min_alpha_words_ratio)),
            ("gopher_few_stop_words", below(scores["stop_words"], c.min_stop_words)),
        ])
        return reason, rounded(scores)


def _fractions(thresholds: dict[Any, Any]) -> dict[int, float]:
    return {int(n): float(limit) for n, limit in sorted(thresholds.items(), key=lambda item: int(item[0]))}


class GopherRepetition(DocumentFilter):
    """Drop documents that repeat lines, paragraphs or n-grams (Gopher table A1)."""

    name = "gopher_repetition"

    @dataclass
    class Config:
        """Rae et al. 2021, table A1; datatrove GopherRepetitionFilter defaults. None disables.

        `top_n_grams` / `dup_n_grams` map n to the largest allowed fraction of characters in the
        most frequent n-gram / in all repeated n-grams; an empty mapping disables them.
        """

        dup_line_frac: float | None = 0.3
        dup_para_frac: float | None = 0.3
        dup_line_char_frac: float | None = 0.2
        dup_para_char_frac: float | None = 0.2
        top_n_grams: dict[int, float] = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
        dup_n_grams: dict[int, float] = field(
            default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
        prose_only: bool = False  # statistics on prose lines only (technical pages; see filters/prose.py)

        def __post_init__(self) -> None:
            self.top_n_grams = _fractions(self.top_n_grams)
            self.dup_n_grams = _fractions(self.dup_n_grams)

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        c = self.config
        text = (prose_text(text) if c.prose_only else text).strip()
        length = len(text)
        paragraphs = PARAGRAPH_RE.split(text)
        lines = LINES_RE.split(text)
        dup_paras, dup_para_chars = duplicates(paragraphs)
        dup_lines, dup_line_chars = duplicates(lines)
        scores: dict[str, float] = {
            "dup_para_frac": ratio(dup_paras, len(paragraphs)),
            "dup_para_char_frac": ratio(dup_para_chars, length),
            "dup_line_frac": ratio(dup_lines, len(lines)),
            "dup_line_char_frac": ratio(dup_line_chars, length),
        }
        checks = [
            ("gopher_dup_para_frac", above(scores["dup_para_frac"], c.dup_para_frac)),
            ("gopher_dup_para_char_frac", above(scores["dup_para_char_frac"], c.dup_para_char_frac)),
            ("gopher_dup_line_frac", above(scores["dup_line_frac"], c.dup_line_frac)),
            ("gopher_dup_line_char_frac", above(scores["dup_line_char_frac"], c.dup_line_char_frac)),
        ]
        words = tokenize(text).words
        for n, limit in c.top_n_grams.items():
            key = f"top_{n}_gram_char_frac"
            # Overlapping occurrences ("a a a") count a character twice, as in datatrove: cap at 1.
            scores[key] = min(1.0, ratio(top_ngram_chars(words, n), length))
            checks.append((f"gopher_top_{n}_gram", above(scores[key], limit)))
        repeats = True  # no repeated n-gram means no repeated longer n-gram either
        for n, limit in c.dup_n_grams.items():
            key = f"dup_{n}_gram_char_frac"
            chars = duplicate_ngram_chars(words, n) if repeats else 0
            repeats = chars > 0
            scores[key] = ratio(chars, length)
            checks.append((f"gopher_dup_{n}_gram", above(scores[key], limit)))
        return first_failure(checks), rounded(scores)
