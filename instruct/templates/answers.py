"""Final answers inside chain-of-thought text: a declared pattern finds them, one normalisation compares them.

A CoT template declares `answer_pattern`, a regular expression whose first group is the answer; the
last match in a reply wins (a rationale may quote an option before concluding). The default matches
the closing line our CoT templates ask for: "So the answer is X."
"""
from __future__ import annotations

import re
from functools import lru_cache

from instruct.config import ConfigError

DEFAULT_ANSWER_PATTERN = r"(?i)so the answer is:?\s*(.+?)\s*\.?\s*$"
ANSWER_LINE = "So the answer is {answer}."  # what a teacher is asked to end with (matches the default)


@lru_cache(maxsize=64)
def compile_pattern(pattern: str, where: str = "answer_pattern") -> re.Pattern:
    """The pattern compiled in MULTILINE mode (so `$` ends a line); it must capture the answer as group 1."""
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise ConfigError(f"{where}: {pattern!r} is not a valid regular expression ({error})") from None
    if compiled.groups < 1:
        raise ConfigError(f"{where}: {pattern!r} needs a group, e.g. (.+), around the answer")
    return compiled


def extract_answer(text: str, pattern: str = DEFAULT_ANSWER_PATTERN) -> str | None:
    """The answer of the last match of `pattern` in `text`, stripped; None when nothing matches."""
    matches = list(compile_pattern(pattern).finditer(text or ""))
    if not matches:
        return None
    answer = matches[-1].group(1)
    return answer.strip() if answer and answer.strip() else None


def normalize_answer(answer: str | None) -> str:
    """Case, surrounding quotes/punctuation and inner whitespace do not decide correctness."""
    if answer is None:
        return ""
    return " ".join(answer.strip().strip("\"'`*.,;:!()[]").split()).casefold()


def same_answer(prediction: str | None, reference: str | None) -> bool:
    return prediction is not None and normalize_answer(prediction) == normalize_answer(reference) != ""
