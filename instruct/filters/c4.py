"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", §2.2).

Unlike the other filters, C4 edits text: line-level rules REMOVE lines (no terminal
punctuation, too few words, "javascript", cookie/terms-of-use boilerplate, words over 1000
characters, Wikipedia citation marks) and document-level rules drop the whole document
("lorem ipsum", a curly bracket, fewer than 5 sentences left). Rule order and defaults follow
datatrove's `C4QualityFilter` and the reference implementation in tensorflow_datasets
(c4_utils.py). The bad-words list is not applied (it would need a download).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from instruct.filters.prose import SENTENCE_END_RE, is_prose
from instruct.pipeline.step import DocumentFilter

CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
TERMINAL_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


class C4(DocumentFilter):
    """Remove boilerplate lines, then drop documents C4 would not keep."""

    name = "c4"

    @dataclass
    class Config:
        """Raffel et al. 2020 §2.2; datatrove C4QualityFilter defaults. None disables a rule."""

        remove_citations: bool = True
        filter_no_terminal_punct: bool = True
        min_words_per_line: int | None = 3
        max_word_length: int | None = 1000
        filter_javascript: bool = True
        filter_policy: bool = True
        policy_phrases: list[str] = field(default_factory=lambda: list(POLICY_PHRASES))
        filter_lorem_ipsum: bool = True
        filter_curly_bracket: bool = True
        min_num_sentences: int | None = 5
        prose_only: bool = False  # rules on prose lines only; code, tables, commands kept as they are

    def clean(self, text: str) -> tuple[str, str | None, dict[str, Any], dict[str, int]]:
        """(text with bad lines removed, reason to drop the document or None, scores, removed lines by rule)."""
        c = self.config
        kept: list[str] = []
        removed: Counter = Counter()
        sentences = 0
        reason = None
        lines = text.splitlines()
        for raw in lines:
            line = raw.strip()
            if not line:
                continue  # blank lines carry no content; not counted as removed
            if c.prose_only and not is_prose(raw):
                kept.append(raw.rstrip())  # code keeps its indentation; it counts for no rule
                continue
            words = line.split()
            if c.max_word_length is not None and max(map(len, words)) > c.max_word_length:
                removed["long_word"] += 1
                continue
            if c.remove_citations:
                line = CITATION_RE.sub("", line)
            if c.filter_no_terminal_punct and (not line.endswith(TERMINAL_PUNCTUATION) or line.endswith("...")):
                removed["no_terminal_punct"] += 1
                continue
            if c.min_words_per_line is not None and len(words) < c.min_words_per_line:
                removed["few_words"] += 1
                continue
            lower = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in lower:
                reason = "c4_lorem_ipsum"
                break
            if c.filter_javascript and "javascript" in lower:
                removed["javascript"] += 1
                continue
            if c.filter_curly_bracket and "{" in line:
                reason = "c4_curly_bracket"
                break
            if c.filter_policy and any(phrase in lower for phrase in c.policy_phrases):
                removed["policy"] += 1
                continue
            sentences += max(1, len(SENTENCE_END_RE.findall(line)))
            kept.append(line)
        if reason is None and c.min_num_sentences is not None and sentences < c.min_num_sentences:
            reason = "c4_too_few_sentences"
        scores = {"lines": len(lines), "kept_lines": len(kept), "sentences": sentences,
                  "removed_lines": dict(removed)}
        return "\n".join(kept), reason, scores, {f"c4_line_{key}": n for key, n in removed.items()}

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        _, reason, scores, _ = self.clean(text)
        return reason, scores
