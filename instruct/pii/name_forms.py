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
from itertools import groupby

from instruct.pii.name_context import (
    PARTICLES,
    company_suffix,
    cue_before,
    name_length,
    name_word,
    person_cue,
    product_context,
)
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
_UPPER = r"[A-Z\u00c0-\u00de\u0100-\u024f]"
# what ends a field of a record or a quoted value: a closing quote or bracket, a tab, two spaces or more
FIELD_END = r"[\"”'’\]]|\t| {2,}"
CITATION = re.compile(rf"(?<![\w.])((?:(?i:{_PARTICLES}) )*{_FAMILY}), ((?:{_UPPER}\.[ -]?){{1,3}})"
                      rf"(?=\s*(?:,|&|and\b|\(|et al\b|$)|{FIELD_END})", re.M)  # "da Conceição, B. E. and"
YEAR_AFTER = re.compile(r"\s*\(\d{4}")
# particles of family names as forms print them ("VAN GOERLE Jelte", "MAC ROBHARTAIGH Naomi", "Ó NEABHAIL")
_UPPER_PARTICLES = "|".join(sorted({p.upper() for p in (*PARTICLES, *GAELIC_PREFIXES)}, key=len, reverse=True))
UPPER_FAMILY = re.compile(rf"(?<![\w.])(?:(?:{_UPPER_PARTICLES}) )*{_UPPER}{{2,}}(?:-{_UPPER}{{2,}})?(?= [^\W\d_])")
FAMILY_COMMA = re.compile(rf"(?<![\w.])((?:(?i:{_PARTICLES}) )*{_FAMILY}), (?=\w)")  # "Vodopivec, Polona"
# words starting with a capital or initials, one space apart, on one line: a heading, a byline, a sentence in capitals
UPPER_RUN = re.compile(rf"(?<![\w.])(?:{_UPPER}[\w'’-]*|[A-Z]\.)(?: (?:{_UPPER}[\w'’-]*|[A-Z]\.))+(?![\w.])")
GIVEN_WORDS = re.compile(r"\S+")
# a field of a record: words one space apart, set off by a line's ends, tabs, two spaces or quotes
FIELD_TEXT = re.compile(r"[^\s\"”\]]+(?: [^\s\"”\]]+)*")
LABEL = re.compile(r"^[^:]*:\s*")  # "Passenger: " before a field's value
FIELD_NAME_WORDS = (2, 4)
FIELD_BREAK = re.compile(r"[\n\t\"”\]]| {2,}")  # the end of a line, a column or a quoted value
MAX_GIVEN = 3
FIELD_START = re.compile(r"(?:^|\n|[:;|\t] ?| {2})$")  # a line's start, a label's colon, a column's gap
CATALOGUE_END = re.compile(r",|[ \t]*(?:\n|$)|\t| {2}")


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
        tokens, words = field_words(text, match.end())
        length = name_length(words)
        if not length:
            continue
        end = tokens[length - 1].start() + len(words[length - 1])
        if strict and not initial(words[0]) and all(given_word(word) for word in words[:length]) or not strict and (
                not frequent or person_cue(text, match.start(), end, pronoun=False)):
            yield match.start(), end


def field_words(text: str, start: int) -> tuple[list[re.Match], list[str]]:
    """The first MAX_GIVEN tokens from `start` to the end of the field (a line, a column set off by a
    tab or two spaces, a quoted value: "Sonal" of `"Gavade, Sonal"]`, not "Classe" of "TABASASUM
    Aphiyaa    Classe"), each as a word of a name (`field_word`)."""
    field_end = FIELD_BREAK.search(text, start)
    tokens = list(GIVEN_WORDS.finditer(text, start, field_end.start() if field_end else len(text)))[:MAX_GIVEN]
    return tokens, [field_word(token.group()) for token in tokens]


def field_word(token: str) -> str:
    """A token as a word of a name: an initial keeps its period ("S." of "S.,"), other words lose the
    punctuation after them ("Polona" of "Polona;")."""
    bare = token.rstrip(",;:)")
    return bare if initial(bare) else bare.rstrip(",.;:)")


def given_word(word: str) -> bool:
    """A given name or an initial, or a word English does not know in either case (whose share of
    lower-case spellings says nothing: "dejan" is as rare as "Dejan")."""
    return given_name(word) or rare(word)


def english_word(word: str) -> bool:
    """A word English writes in lower case and knows ("Left", "Her", "Course"): it ends a name in
    capitals; "Dejan", rare in either case, does not."""
    return common_noun(word) and not rare(word)


def given_after(text: str, start: int, strict: bool = True) -> tuple[int, int]:
    """(how many, end) of the given-name words from `start` to the line's end: given names, initials
    or words English does not know, the first no initial ("Polona", "Ildikó G."); not `strict`: any
    name words ("J.", "Melanie")."""
    tokens, words = field_words(text, start)
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
        if not name_word(last.split("-")[0]) or (common_noun(last) or strict and not rare(last)) and not (
                catalogued(text, match.start(), match.end())):
            continue
        if cue_before(text, match.end()) or product_context(text, match.start(), match.end()):
            continue
        length, end = given_after(text, match.end(), strict)
        if length:
            yield match.start(), end


def catalogued(text: str, start: int, given: int) -> bool:
    """ "Family, " at `start` opens a field and given names ending on an initial follow at `given`, then a
    comma or the field's end: a register's or catalogue's "Family, Given I." ("Dam, Sussie S., Liberal
    Democrat"; "1974: Terry, Andrea J., p. 12"), whose family name may be an English word."""
    length, end = given_after(text, given)
    _, words = field_words(text, given)
    return length >= 2 and initial(words[length - 1]) and FIELD_START.search(text, 0, start) is not None and (
        CATALOGUE_END.match(text, end) is not None)


def upper_case_names(text: str, strict: bool = True) -> Iterator[tuple[int, int]]:
    """(start, end) of a name written in capitals, wherever it sits in a line of capitals ("BY JÚLIA
    GUARDIA", "IN LOVING MEMORY OF CHERYL STEWART", "MR. SIMO KOKOSHKOVA WILL SPEAK"): from a given
    name written normally ("Júlia"), the given names, initials and words English does not know after
    it, two or more, the last no English word ("GRACE PERIOD"); not `strict`: any two or more name
    words no English word ("LEFT", "HER") splits, from after the last cue ("BY WENDY WILLIAMS",
    "CONTACT M. CORDIER"; `loose_upper_names`)."""
    for run in UPPER_RUN.finditer(text):
        for capitals, tokens in groupby(GIVEN_WORDS.finditer(run.group()), key=lambda t: t.group().isupper()):
            if not capitals:  # "Seat" in "ANNA SMITH Seat"
                continue
            piece = list(tokens)
            offsets = [run.start() + token.start() for token in piece]
            words = [title_cased(token.group()) for token in piece]
            spans = loose_upper_names(text, offsets, words) if not strict else strict_upper_names(words)
            yield from ((offsets[first], offsets[last] + len(words[last])) for first, last in spans
                        if not any(map(company_suffix, words[first:last + 2])))  # "JERZY KOWALSKI GMBH"


def title_cased(word: str) -> str:
    """A word in capitals as the word lists know it ("KOWALCZYK" -> "Kowalczyk"), an initial as it is."""
    return word if initial(word) else word.title()


def strict_upper_names(words: list[str]) -> Iterator[tuple[int, int]]:
    """(first, last) word of each name in a run of title-cased capitals: a given name, then given
    names, initials or words English does not know, ending on no initial and no English word."""
    first = 0
    while first < len(words) - 1:
        last = first
        if given_name(words[first]) and not initial(words[first]):
            while last + 1 < len(words) and given_word(words[last + 1]):
                last += 1
            while last > first and (initial(words[last]) or english_word(words[last])):
                last -= 1
        if last > first:
            yield first, last
        first = last + 1


def loose_upper_names(text: str, offsets: list[int], words: list[str]) -> Iterator[tuple[int, int]]:
    """(first, last) word of each proposal in a run of title-cased capitals: from after the last cue,
    the stretches of name words that are no English word (`english_word`), two or more, the first an
    initial or one a given name or a word English does not know, the last no initial."""
    cued = max((i for i in range(len(words)) if cue_before(text, offsets[i])), default=0)

    def breaks(i: int) -> bool:
        return not name_word(words[i]) or english_word(words[i])

    for broken, indices in groupby(range(cued, len(words)), key=breaks):
        if broken:
            continue
        stretch = list(indices)
        while stretch and initial(words[stretch[-1]]):
            stretch.pop()
        if len(stretch) >= 2 and (initial(words[stretch[0]]) or any(
                given_word(words[i]) and not initial(words[i]) for i in stretch)):
            yield stretch[0], stretch[-1]


def upper_field_names(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of a field in capitals that is only a name, its last words English ones or not
    ("RUTH WOOD" on a line of its own, "GAURI PANKAJ PATIL" between columns, "Passenger: DA SINH"):
    two to four name words, the first a given name or one a word English does not know (and the first
    no particle, unless a label before makes it a person's: "Passenger: DA SINH"); in a field
    of its own a name may end on an English word, which `upper_case_names` cannot allow in running
    capitals ("GRACE PERIOD ENDS"). Proposals for the judge, which a cue does not vouch for ("TO: NEW
    ZEALAND")."""
    low, high = FIELD_NAME_WORDS
    for field in FIELD_TEXT.finditer(text):
        label = LABEL.match(field.group())
        tokens = list(GIVEN_WORDS.finditer(text, field.start() + (label.end() if label else 0), field.end()))
        if not tokens or not tokens[-1].group().isupper():  # prose: most fields end here
            continue
        # from after a cue word ("ANNA KOWALCZYK" of "BY ANNA KOWALCZYK"); only the last `high` words can start a name
        cued = max((i for i in range(max(0, len(tokens) - high), len(tokens)) if cue_before(text, tokens[i].start())),
                   default=0)
        tokens = tokens[cued:]
        start = tokens[0].start()
        words = [title_cased(token.group()) for token in tokens]
        if not (low <= len(words) <= high and all(t.group().isupper() and name_word(w) for t, w in zip(tokens, words))
                and not initial(words[-1]) and not any(map(company_suffix, words))):
            continue
        leading_particle = words[0].lower() in PARTICLES and not cue_before(text, start)  # "DE BULT", a village
        if (given_name(words[0]) and not initial(words[0])) or (any(map(rare, words)) and not leading_particle):
            yield start, field.end()


def loose_forms(text: str) -> Iterator[tuple[int, int]]:
    """Every form above with `strict=False`: what the LM judge is asked about."""
    yield from upper_family_names(text, strict=False)
    yield from family_comma_given(text, strict=False)
    yield from upper_case_names(text, strict=False)
