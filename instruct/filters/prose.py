"""Split extracted text into prose and non-prose lines, so word-statistics rules judge the prose.

Technical pages mix sentences with code, shell sessions, option lists and table rows. Gopher's
alpha-word ratio, C4's curly-bracket and sentence rules and FineWeb's line rules were tuned on
prose, and on a real documentation corpus (bench/quality_bench.py --real) they drop about half
of the good pages because of the code. With `prose_only: true` a rule computes its statistics on
the prose lines only; the document text itself is left as it is.

Extractors flatten `pre`/`code`/`table` into lines, so the split is made per line from the
line's shape: a prose line has enough words, mostly alphabetic ones, and few code symbols.
"""
from __future__ import annotations

import re

CODE_SYMBOLS_RE = re.compile(r"[{}\[\]()<>=;$|\\`_*&%#@^~+/]")
WORD_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
CODE_START_RE = re.compile(r"^\s*(?:\$ |# |>>> |\.\.\. |% |[A-Za-z_][\w.]*\(|(?:def|class|import|from|return|if|for|"
                           r"while|SELECT|INSERT|UPDATE|CREATE|ALTER|DROP)\b)")

BLANK_RUN_RE = re.compile(r"\n{3,}")

MIN_WORDS = 4  # fewer words: a heading, an option name or a table cell, not a sentence
MIN_WORD_SHARE = 0.6  # alphabetic words / whitespace-separated tokens
MAX_SYMBOL_SHARE = 0.06  # code symbols / characters


def is_prose(line: str) -> bool:
    """True for a line that reads as natural-language text (a sentence or part of a paragraph)."""
    stripped = line.strip()
    tokens = stripped.split()
    if len(tokens) < MIN_WORDS or "\t" in stripped or "   " in stripped:
        return False  # short, or cells aligned by tabs / runs of spaces (a table row)
    if CODE_START_RE.match(line):
        return False
    words = sum(1 for token in tokens if WORD_RE.fullmatch(token.strip(".,;:!?\"'()“”‘’")))
    if words < MIN_WORD_SHARE * len(tokens):
        return False
    return len(CODE_SYMBOLS_RE.findall(stripped)) <= MAX_SYMBOL_SHARE * len(stripped)


def prose_text(text: str, paragraphs: bool = True) -> str:
    """The prose lines of `text`; with `paragraphs`, one blank line where anything else stood
    (repetition rules split paragraphs there), else the prose lines alone (line-ratio rules)."""
    kept = [line if is_prose(line) else "" for line in text.split("\n")]
    if not paragraphs:
        return "\n".join(line for line in kept if line)
    return BLANK_RUN_RE.sub("\n\n", "\n".join(kept)).strip("\n")


SENTENCE_END_RE = re.compile(r"[.!?]+['\")\]]*(?=\s|$)")
PARAGRAPH_MIN_WORDS = 15


def paragraph_words(text: str) -> int:
    """Words in paragraph lines: two or more sentences and PARAGRAPH_MIN_WORDS words on one line.

    Site chrome, record dumps and generated tables put one item per line; real prose has
    paragraphs, so this count separates them without looking at any word.
    """
    return sum(len(words) for line in text.split("\n")
               if len(words := line.split()) >= PARAGRAPH_MIN_WORDS and len(SENTENCE_END_RE.findall(line)) >= 2)
