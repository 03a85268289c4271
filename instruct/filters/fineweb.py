"""FineWeb's extra quality rules (Penedo et al. 2024, "The FineWeb Datasets", §3.3).

They target what Gopher and C4 miss in extracted web text: pages of lines that do not end
in punctuation (menus, tables), mostly short lines, repeated lines, and lists (one line per
few words). Defaults are datatrove's `FineWebQualityFilter`; comparisons keep its
inclusive/exclusive sides (e.g. a punctuation ratio of exactly 0.12 fails).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from instruct.filters.prose import prose_text
from instruct.filters.text_stats import duplicates, first_failure, ratio, rounded, tokenize
from instruct.pipeline.step import DocumentFilter

STOP_CHARS = (".", "'", '"', "!", "?")


class FineWeb(DocumentFilter):
    """Drop documents with list-like, fragmentary or repetitive line structure."""

    name = "fineweb"

    @dataclass
    class Config:
        """datatrove FineWebQualityFilter defaults (FineWeb, Penedo et al. 2024). None disables."""

        line_punct_thr: float | None = 0.12  # drop if share of lines ending in . ' " ! ? <= this
        line_punct_exclude_zero: bool = False  # keep documents with no such line at all
        short_line_thr: float | None = 0.67  # drop if share of short lines >= this
        short_line_length: int = 30  # a line of at most this many characters is short
        char_duplicates_ratio: float | None = 0.01  # drop if chars in repeated lines / all >= this
        new_line_ratio: float | None = 0.3  # drop if newlines per token > this (lists)
        prose_only: bool = False  # statistics on prose lines only (technical pages; see filters/prose.py)

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        c = self.config
        if c.prose_only:
            text = prose_text(text, paragraphs=False)
        lines = text.split("\n")
        stripped = [line.rstrip() for line in lines]
        short = c.short_line_length
        punct = ratio(sum(map(lambda line: line.endswith(STOP_CHARS), stripped)), len(lines))
        scores = {
            "line_punct_ratio": punct,
            "short_line_ratio": ratio(sum(map(lambda line: len(line) <= short, stripped)), len(lines)),
            "char_dup_ratio": ratio(duplicates([s for s in stripped if s.strip()])[1],
                                    len(text) - len(lines) + 1),
            "list_ratio": ratio(len(lines) - 1, tokenize(text).n_tokens),
        }
        reason = first_failure([
            ("fineweb_line_punct_ratio", c.line_punct_thr is not None and punct <= c.line_punct_thr
             and not (punct == 0 and c.line_punct_exclude_zero)),
            ("fineweb_short_line_ratio", c.short_line_thr is not None
             and scores["short_line_ratio"] >= c.short_line_thr),
            ("fineweb_char_dup_ratio", c.char_duplicates_ratio is not None
             and scores["char_dup_ratio"] >= c.char_duplicates_ratio),
            ("fineweb_list_ratio", c.new_line_ratio is not None and scores["list_ratio"] > c.new_line_ratio),
        ])
        return reason, rounded(scores)
