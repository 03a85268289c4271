"""Names written family name first or in capitals: reference lists ("Okafor, J. K. and ...",
APA/Chicago style), directories ("Vodopivec, Polona"), the upper-case family name of forms,
passports and delegate lists ("TANAKA Kenji") and upper-case bylines ("BY ANNA KOWALCZYK").

All need the word lists (name_lexicon): an upper-case word is a family name only where English
text hardly ever writes it so ("HTTP", "NASA", "TODO" are frequent), and what follows it must be
a given name, an initial or a word English does not know. With `strict=False` the forms ask less
of the words ("SU X.", "BY WENDY WILLIAMS", "Mercer, Melanie"): proposals for the LM judge, which
reads each and decides, never names on their own.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from instruct.pii.name_context import PARTICLES, cue_before, name_length, name_word, person_cue, product_context
from instruct.pii.name_lexicon import (
    RARE_MAX,
    UNSEEN,
    common_noun,
    given_name,
    initial,
    rare,
    word_log_probs,
)

_FAMILY = r"[^\W\d_][\w'’]*(?:-[^\W\d_][\w'’]*)?"
GAELIC_PREFIXES = ("Mac", "Mc", "Nic", "Ní", "Ó", "Ua")  # words of their own in a family name ("Mac Confraoich")
_PARTICLES = "|".join([*sorted(PARTICLES, key=len, reverse=True), *GAELIC_PREFIXES])
CITATION = re.compile(rf"(?<![\w.])((?:(?i:{_PARTICLES}) )*{_FAMILY}), ((?:[A-Z]\.[ -]?){{1,3}})"
                      r"(?=\s*(?:,|&|and\b|\(|et al\b|$))", re.M)  # "da Conceição, B. E. and"
YEAR_AFTER = re.compile(r"\s*\(\d{4}")
_UPPER = r"[A-Z\u00c0-\u00de\u0100-\u024f]"
# particles of family names as forms print them ("VAN GOERLE Jelte", "MAC ROBHARTAIGH Naomi", "Ó NEABHAIL")
_UPPER_PARTICLES = "|".join(sorted({p.upper() for p in (*PARTICLES, *GAELIC_PREFIXES)}, key=len, reverse=True))
UPPER_FAMILY = re.compile(rf"(?<![\w.])(?:(?:{_UPPER_PARTICLES}) )*{_UPPER}{{2,}}(?:-{_UPPER}{{2,}})?(?= [^\W\d_])")
FAMILY_COMMA = re.compile(rf"(?<![\w.])((?:(?i:{_PARTICLES}) )*{_FAMILY}), (?=\w)")  # "Vodopivec, Polona"
UPPER_RUN = re.compile(rf"(?<![\w.]){_UPPER}[\w'’-]*(?: (?:{_UPPER}[\w'’-]*|[A-Z]\.)){{1,4}}(?![\w.])")
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


def upper_family_names(text: str, strict: bool = True) -> Iterator[tuple[int, int]]:
    """(start, end) of "FAMILY Given [M.]": an upper-case word English rarely writes so (particles
    before it: "VAN GOERLE"), then one to three given-name words, the first no initial ("RGNG Q."
    ends an IBAN); not `strict`: any name words ("SU X.", "SIMBA Kaombwe"), and a family name English
    writes in capitals too ("BROWN", "SU") where a person's word follows ("(Team Lead)")."""
    probs = word_log_probs()
    for match in UPPER_FAMILY.finditer(text):
        frequent = probs.get(match.group().split()[-1], UNSEEN) >= RARE_MAX
        if frequent and strict:
            continue
        line_end = text.find("\n", match.end())
        tokens = list(GIVEN_WORDS.finditer(text, match.end(), line_end if line_end >= 0 else len(text)))[:MAX_GIVEN]
        words = [token.group().rstrip(",.;:)") if not initial(token.group()) else token.group() for token in tokens]
        length = name_length(words)
        if not length:
            continue
        end = tokens[length - 1].start() + len(words[length - 1])
        if strict and not initial(words[0]) and all(given_word(word) for word in words[:length]) or not strict and (
                not frequent or person_cue(text, match.start(), end, pronoun=False)):
            yield match.start(), end


def given_word(word: str) -> bool:
    """A given name or an initial, or a word English does not know in either case and is no noun."""
    return given_name(word) or (rare(word) and not common_noun(word))


def given_after(text: str, start: int, strict: bool = True) -> tuple[int, int]:
    """(how many, end) of the given-name words from `start` to the line's end: given names, initials
    or words English does not know, the first no initial ("Polona", "Ildikó G."); not `strict`: any
    name words ("J.", "Melanie")."""
    line_end = text.find("\n", start)
    tokens = list(GIVEN_WORDS.finditer(text, start, line_end if line_end >= 0 else len(text)))[:MAX_GIVEN]
    words = [token.group() if initial(token.group()) else token.group().rstrip(",.;:)") for token in tokens]
    ends = [i + 1 for i, token in enumerate(tokens) if token.group()[-1] in ",;:)"]  # "Polona; Okafor, C."
    length = name_length(words[:ends[0]] if ends else words)
    if not length or strict and (initial(words[0]) or not all(map(given_word, words[:length]))):
        return 0, start
    return length, tokens[length - 1].start() + len(words[length - 1])


def family_comma_given(text: str, strict: bool = True) -> Iterator[tuple[int, int]]:
    """(start, end) of "Family, Given" in directories and forms ("Vodopivec, Polona"): a name-shaped
    family name that is no common noun, then
    given names, the family name a word English does not know ("Nairobi, Kenya" is a place);
    not after a cue word ("Hi, Anna" is a greeting); not `strict`: any family name that is no
    common noun, any name words after it ("Mercer, Melanie", "Chapuis, J.")."""
    for match in FAMILY_COMMA.finditer(text):
        last = match.group(1).split()[-1]
        if not name_word(last.split("-")[0]) or common_noun(last) or (strict and not rare(last)):
            continue
        if cue_before(text, match.end()) or product_context(text, match.start(), match.end()):
            continue
        length, end = given_after(text, match.end(), strict)
        if length:
            yield match.start(), end


def upper_case_names(text: str, strict: bool = True) -> Iterator[tuple[int, int]]:
    """(start, end) of a name written in capitals ("BY JÚLIA GUARDIA" on a byline): from the first
    word that is a given name written normally ("Júlia"), two or more words, each a given name,
    an initial or a word English does not know, the last no common noun ("GRACE PERIOD"); not
    `strict`: the whole run, if a word of it is a given name or one English does not know ("BY
    WENDY WILLIAMS", "BY M. CORDIER")."""
    for match in UPPER_RUN.finditer(text):
        tokens = list(GIVEN_WORDS.finditer(match.group()))
        if not all(token.group().isupper() for token in tokens):
            continue
        words = [token.group() if initial(token.group()) else token.group().title() for token in tokens]
        if not strict:  # from after the last cue in the run ("BY")
            first = max((i for i in range(len(tokens)) if cue_before(text, match.start() + tokens[i].start())),
                        default=0)
            rest = words[first:]  # name words only: no IBAN groups ("VA04 EU8O")
            if len(rest) >= 2 and name_length(rest) == len(rest) and any(
                    given_word(w) and not initial(w) for w in rest) and not common_noun(rest[-1]):
                yield match.start() + tokens[first].start(), match.end()
            continue
        for first in range(len(words) - 1):
            rest = words[first:]
            if given_name(rest[0]) and not initial(rest[0]) and all(map(given_word, rest[1:])) and not common_noun(
                    rest[-1]):
                yield match.start() + tokens[first].start(), match.end()
                break


def loose_forms(text: str) -> Iterator[tuple[int, int]]:
    """Every form above with `strict=False`: what the LM judge is asked about."""
    yield from upper_family_names(text, strict=False)
    yield from family_comma_given(text, strict=False)
    yield from upper_case_names(text, strict=False)
