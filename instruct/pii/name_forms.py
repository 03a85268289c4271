"""Names written family name first: reference lists ("Okafor, J. K. and ...", APA/Chicago style)
and the upper-case family name of forms, passports and delegate lists ("TANAKA Kenji").

Both need the word lists (name_lexicon): an upper-case word is a family name only where English
text hardly ever writes it so ("HTTP", "NASA", "TODO" are frequent), and what follows it must be
a given name, an initial or a word English does not know.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from instruct.pii.name_context import PARTICLES, name_length, name_word
from instruct.pii.name_lexicon import RARE_MAX, UNSEEN, common_noun, given_name, initial, rare, word_log_probs

_FAMILY = r"[^\W\d_][\w'’]*(?:-[^\W\d_][\w'’]*)?"
_PARTICLES = "|".join(sorted(PARTICLES, key=len, reverse=True))
CITATION = re.compile(rf"(?<![\w.])((?:(?i:{_PARTICLES}) )*{_FAMILY}), ((?:[A-Z]\.[ -]?){{1,3}})"
                      r"(?=\s*(?:,|&|and\b|\(|et al\b|$))", re.M)  # "da Conceição, B. E. and"
YEAR_AFTER = re.compile(r"\s*\(\d{4}")
_UPPER = r"[A-Z\u00c0-\u00de\u0100-\u024f]"
UPPER_FAMILY = re.compile(rf"(?<![\w.]){_UPPER}{{2,}}(?:-{_UPPER}{{2,}})?(?= [^\W\d_])")
GIVEN_WORDS = re.compile(r"\S+")
MAX_GIVEN = 3


def citation_names(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of "Family, I." in a reference list: a name-shaped family name (particles
    before it: "De Jonghe", "da Conceição"), its initials, and a list or a year after; a common noun
    ("White") only with two initials or a year after, not "Table, A. and"."""
    for match in CITATION.finditer(text):
        family, initials = match.group(1), match.group(2).rstrip()
        last = family.split()[-1]
        if name_word(last.split("-")[0]) and (not common_noun(last) or initials.count(".") >= 2
                                              or YEAR_AFTER.match(text, match.end())):
            yield match.start(), match.start(1) + len(family) + 2 + len(initials)


def upper_family_names(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of "FAMILY Given [M.]": an upper-case word English rarely writes so, then one to
    three given-name words, the first no initial ("RGNG Q." ends an IBAN)."""
    probs = word_log_probs()
    for match in UPPER_FAMILY.finditer(text):
        if probs.get(match.group(), UNSEEN) >= RARE_MAX:
            continue
        line_end = text.find("\n", match.end())
        tokens = list(GIVEN_WORDS.finditer(text, match.end(), line_end if line_end >= 0 else len(text)))[:MAX_GIVEN]
        words = [token.group().rstrip(",.;:)") if not initial(token.group()) else token.group() for token in tokens]
        length = name_length(words)
        if length and not initial(words[0]) and all(given_word(word) for word in words[:length]):
            yield match.start(), tokens[length - 1].start() + len(words[length - 1])


def given_word(word: str) -> bool:
    """A given name or an initial, or a word English does not know in either case and is no noun."""
    return given_name(word) or (rare(word) and not common_noun(word))
