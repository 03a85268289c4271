"""What makes a run of words a person's name: its shape, and the words around it.

Shape is checked in Python, not with ASCII classes, so "Božičević", "Trần", "Ó Cathláin", "van der
Sloot" and "O'Brien" qualify like "Smith"; acronyms, digits and code identifiers never do. Context
is what text itself says about the words: a person cue before ("Dr.", "by", "cc:", "Dear", a
sign-off line, an `author` key) or after ("wrote", "who", "(maintainer)", an age ", 54,", a later "she"), or product
context in the same line ("install", "download", a version number, "app", "™"), which vetoes.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

PARTICLES = frozenset("van der den de del della di da das dos du la le von zu ter ten bin ibn al el y".split())
SUFFIXES = frozenset({"Jr.", "Jr", "Sr.", "Sr", "II", "III", "IV"})
# a run that holds one of these names a company ("Northwind Ltd", "Acme Corp."), however name-like
COMPANY_SUFFIXES = frozenset({"Ltd", "Inc", "Corp", "Co", "Oy", "Pty", "Plc", "Llc", "LLC", "PLC", "GmbH", "AG", "KG",
                              "BV", "NV", "SpA", "Srl", "SRL", "Sarl", "SARL", "Ltda", "LLP"})
# a run of these alone is a date ("Tue Jan 09"), though "Jan" and "May" are given names
CALENDAR = frozenset("Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun Monday Tuesday Wednesday Thursday Friday Saturday "
                     "Sunday Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec January February March April May June "
                     "July August September October November December".split())
MAX_WORDS = 6
# a capital inside a family name follows one of these ("McGann", "DeShawn", "LeBlanc"); "EcoTank",
# "DevOps", "YouTube" are brands
INNER_CAPITAL_PREFIXES = frozenset("Mc Mac De Da Di Du La Le Van Von Fitz".split())
_WORD = r"[A-Z\u00c0-\u00de\u0100-\u024f\u1e00-\u1eff][\w'’.-]*"  # Latin capitals first (a prefilter)
_CAP = r"(?<![\w.@/#$-])" + _WORD
_PARTICLE = "|".join(sorted(PARTICLES, key=len, reverse=True))
_LINKED = rf"(?:{_PARTICLE})-{_WORD}"  # "al-Rashid"
RUN = re.compile(rf"{_CAP}(?:[ \u00a0](?:(?:{_PARTICLE})[ \u00a0])*(?:{_LINKED}|{_CAP})){{0,{MAX_WORDS - 1}}}")
TOKEN = re.compile(r"\S+")

_TITLES = r"mr|mrs|ms|miss|mx|dr|prof|sir|dame|madam|rev|fr|sr|hon|lady|lord"
STRONG_CUE = re.compile(rf"(?i)(?:\b(?:{_TITLES})\.?|\bmy name is|\bcall me)\s+$")  # one word is enough
# titles that, in capitals with no period, are as often letters of a product's or a place's name
# ("MX Master", "MS Word", "DR Congo", "SR 520"); "MR", "MRS", "DR." stay titles
SHOUTED_TITLE = re.compile(r"\b(?:MX|MS|DR|FR|SR|REV|HON)\s+$")
PERSON_BEFORE = re.compile(
    rf"(?i)(?:\b(?:{_TITLES}|dear|hi|hello|hey|greetings|thanks(?: to)?|thank you|regards|wishes|sincerely|"
    r"cheers|best|yours|signed|by|cc|bcc|ask(?: for)?|ping|contact|tell|according to|(?:spoke|talked|met|chatted) with|"
    r"met|my name is|call me|named|called|i am|i'm|this is|e-?mail|received from|payable to|paid to|"
    r"to the order of|estate of|in (?:loving )?memory of|gift of|bequest of|bequeathed by|lent by)\b\.?,?"
    r"|\b(?:from|to|cc|bcc|reply-to|by|authors?|maintainers?|owners?|assignee|assigned to|reporter|reviewers?|"
    r"approved|approver|attendees|participants|speakers?|host|credits?|photo|signed|customer|user|contact|rsvp|"
    r"passengers?|patient|pupil|student|guest|tenant|employee|candidate|applicant|recipient|payee|holder|"
    r"defendant|plaintiff|claimant|witness|deceased|member|donor|juror|nominee|chair|presenter|lecturer|teacher|"
    r"tutor|mentor|supervisor|examiner|referee|umpire|signatory|buyer|seller|sender|addressee|collector|inventor|"
    r"translator|illustrator|narrator|director|editor)(?:\s+(?:no\.\s*)?\d+)?\s*:"  # "Juror No. 7:"
    r"|author\w*[\"']?\s*[=:]\s*[\[({]?|\bTODO\("  # BibTeX's "author = {" too
    r"|\bvs?\."  # a case's second party: "Ojo v. Northwind", "STATE v. ..."
    r"|\[(?:white|black)|\bcn="  # a chess game's players (`[White "..."]`), iCalendar's and LDAP's common name
    r"|(?:^|\n)\^?[0-9a-f]{7,40}\s+(?:\S+\s+)?\("  # `git blame`: "a41c9e2 (Author 2023-04-11 ..."
    r"|(?:^|\n)[1678]00 [\d_# ]{2} ?[|$‡]a"  # MARC 21's personal-name fields: "100 1_ |a Family, Given, |d 1968-"
    r"|\bcopyright\s*(?:\(c\)|©)?\s*(?:\d{4}(?:\s*[-–,]\s*\d{4})*,?)?"  # "Copyright (c) 2018-2024"
    r"|^[ \t]*(?:(?:full|your|patient|applicant|customer|contact|maiden|family|given|first|last)[ \t]+)?name"
    r"(?:[ \t]+of[ \t]+[a-z]+(?:[ \t]+[a-z]+)?)?[ \t]*:)\s*[\"'“]?\s*$")  # authors = [", "Name of applicant:"
SIGN_OFF_LINE = re.compile(r"(?i)\b(?:regards|wishes|sincerely|cheers|thanks|best|yours|--)\W*\n\s*$")
# what follows a person's name: a role in brackets, a person's verb, an age ("X, 54, of Dayton"), a case's
# second party ("Ojo v. Northwind"), a contract's party ('Anna Smith (the "Licensee")')
PERSON_AFTER = re.compile(
    r"(?:['’]s)?\s*(?:\((?:author|maintainer|reviewer|editor|chair|[\w ]*(?:manager|lead|director|engineer|officer|"
    r"founder|intern))\)|,?\s*(?:who|wrote|said|says|"
    r"writes|replied|commented|asked|explained|told|argued|agreed|disagreed|committed|joined|thinks|"
    r"believes|called|emailed|phoned|texted|laughed|smiled|sighed|nodded|shrugged|whispered|"
    r"shouted|cried|died)\b|,\s*(?:aged\s+)?\d{1,3},|,?\s*(?:born|b\.)\s+\d|,?\s*\(?deceased\b"
    r"|\s+vs?\.\s|\s*\((?:the|hereinafter(?: referred to as)?(?: the)?)\s+[\"“])", re.IGNORECASE)
PRONOUN_AFTER = re.compile(r"(?i)^[^.\n]{0,60}?\b(?:he|she|him|his|her|hers)\b")
# a version number ("v2.1", "Python 3.11"), not a time, a price, a date or a measure ("6:58.2", "£12.50",
# "12.03.2024", "4.2 kg"), which sit next to people's names in results, receipts and records
UNITS = r"%|°|(?:kg|g|mg|mcg|lb|lbs|oz|km|m|cm|mm|mi|ft|l|ml|s|sec|min|h|hrs?|kcal|kwh|mph|kph|bpm|pts?)\b"
VERSION = r"(?<![\d:.,£$€¥₹])\bv?\d+\.\d+(?!\d)(?!\.(?:19|20)\d\d\b)(?!\s?(?:" + UNITS + "))"
PRODUCT_CONTEXT = re.compile(
    r"(?i)\b(?:install\w*|download\w*|upgrad\w*|update[sd]?|release notes|"
    r"licen[cs](?:e[sd]?|ing)\b|apps?|application|browser|plugin|extension|software|tool|platform|ide|sdk|api|"
    r"device|laptop|firmware|settings|preferences|crash\w*|launch\w*|benchmark\w*|runs? on|"
    r"(?:logg|sign)\w* (?:me |you |us )?(?:in|out)|"  # software: "keeps logging me out"
    r"revenue|shares of|layoffs|spokes(?:person|man|woman)|analysts|regulators)\b|[™®©]|" + VERSION)  # a company
# what English puts before a place or a thing and not before a person's name: "Hotels near X", "The X integration"
PLACE_BEFORE = re.compile(r"(?i)\b(?:in|near|around|outside|across|throughout|the|an?)\s+$")
# a determiner right before: a thing ("The Kobo Clara arrived", "My Kobo Clara overheats"), not a person; not
# "that", which is mostly a conjunction before a name ("certifies that Anna Smith")
DETERMINER_BEFORE = re.compile(r"(?i)\b(?:the|an?|my|your|our|their|its|this|these|those|every|each|any|no)\s+$")
# words that start no name ("The Insidious", "Some Juicy"); not "An", "In", "So", "Will", "May", which do
LEADING_FUNCTION_WORDS = frozenset("the some any every each this that these those our your their my its off of for "
                                   "with from into about over under if when while then than but and or as all both "
                                   "no not nor there here what which whose where why how".split())
# where a sentence starts: a line's start, or after a sentence's end
SENTENCE_START = re.compile(r"(?:^|\n|[.!?][\"”’)]?\s)\s*$")
POSSESSIVE = re.compile(r"['’]s?\b")
PRODUCT_REACH = 24  # characters either side: "Install X first", not a version number at the end of the line
LOWER_WORD = re.compile(r"(?<![\w.])[a-z]{3,}(?![\w(])")
COMMON_MIN = 5  # lower-case occurrences in the stdlib sources that make a word a common noun


@lru_cache(maxsize=1 << 16)  # the same capitalised words recur; runs() asks several times per run
def name_word(word: str) -> bool:
    """A capitalised word of letters (inner apostrophes and hyphens; "McGann", not "UserName"), or
    an initial ("J.")."""
    core = word[:-1] if word.endswith(".") and len(word) <= 3 else word  # "J.", "Jr."
    if not (core[:1].isupper() and all(c.isalpha() or c in "'’-" for c in core) and core[-1] not in "'’-"):
        return False
    if len(core) == 1:
        return True
    inner = [i for i in range(1, len(core)) if core[i].isupper() and core[i - 1].islower()]
    return any(c.islower() for c in core) and all(core[:i] in INNER_CAPITAL_PREFIXES for i in inner)


def company_suffix(word: str) -> bool:
    """ "Ltd.", "GmbH", and as lines in capitals print them ("LTD", "GMBH"; read title-cased, "Gmbh")."""
    return word.rstrip(".,").lower() in _COMPANY_SUFFIXES_LOWER


_COMPANY_SUFFIXES_LOWER = frozenset(suffix.lower() for suffix in COMPANY_SUFFIXES)
# the last word of an organisation's name, never of a person's
ORGANISATION_WORDS = frozenset(
    "Partnership Partners Associates Group Holdings Foundation Institute Association Society Corporation Company "
    "Industries Enterprises Technologies Systems Solutions Services Pharmaceuticals Laboratories Labs Airlines "
    "Airways Motors Foods Studios Records Publishing Publishers University College Academy Hospital Clinic Museum "
    "Library Council Committee Agency Ministry Bank Insurance Ventures Consulting Trust Team Project Developers "
    "Maintainers Contributors Community".split())


def organisation(text: str, start: int, end: int) -> bool:
    """The words at [start, end) end in a company's suffix or an organisation's word, or the next word
    on the line is one: "John Lewis Partnership", "Jerzy Kowalczyk GmbH", "the Jane Goodall Institute"
    (a person's name inside an organisation's is the organisation's)."""
    last = text[start:end].split()[-1:]
    following = text[end:end + 40].split(maxsplit=1)[:1] if text[end:end + 1] == " " else []
    return any(company_suffix(word) or word[:1].isupper() and word.rstrip(".,").title() in ORGANISATION_WORDS
               for word in last + following)


def linked(word: str) -> bool:
    """A particle joined to a family name: "al-Rashid", "el-Amin"."""
    head, _, tail = word.partition("-")
    return head in PARTICLES and name_word(tail)


def name_length(words: list[str]) -> int:
    """How many of `words`, from the first, make a name: name words and inner particles, ending on a
    name word (or a suffix such as "Jr."); 0 when the first word is not a name word or a company's
    suffix follows."""
    length = 0
    for index, word in enumerate(words):
        if company_suffix(word):
            return 0
        if name_word(word) or (index and (word in SUFFIXES or linked(word))):
            length = index + 1
        elif not (index and word in PARTICLES):
            break
    return length


def trim(value: str) -> str:
    """The value without a possessive or sentence end: "Mensah's" -> "Mensah", "Byrd." -> "Byrd"."""
    value = re.sub(r"['’]s?$", "", value)
    return value[:-1] if value.endswith(".") and not re.search(r"(?:^|\s)\S\.$|\b(?:Jr|Sr)\.$", value) else value


def runs(text: str) -> Iterator[list[tuple[int, int]]]:
    """Each name-shaped run of words on a line, as its readings (start, end) from the first word
    on: "Dear Noah Costa" -> "Dear Noah Costa", "Noah Costa". A reading has two or more words, or
    one that a strong cue (a title, "my name is") precedes."""
    for match in RUN.finditer(text):
        tokens = [(match.start() + m.start(), match.start() + m.end()) for m in TOKEN.finditer(match.group())]
        index = 0
        while index < len(tokens):
            run = tokens[index:index + MAX_WORDS]
            words = [trim(text[start:end]) for start, end in run]
            length = name_length(words)
            readings = []
            for first in range(length):
                rest = name_length(words[first:length])
                start = run[first][0]
                if rest >= 2 and all(word in CALENDAR for word in words[first:first + rest]):
                    continue  # "Tue Jan"; "Dr. May" stays a name
                if rest >= 2 or (rest == 1 and strong_cue(text, start)):
                    readings.append((start, start + len(trim(text[start:run[first + rest - 1][1]]))))
            if readings:
                yield readings
            index += max(length, 1)


def strong_cue(text: str, start: int) -> bool:
    """A title or "my name is" right before `start`: one word is a name, whatever else says."""
    return STRONG_CUE.search(text[max(0, start - 16):start]) is not None and not shouted_title(text, start)


def shouted_title(text: str, start: int) -> bool:
    """What reads as a title before `start` is a product's or a place's word: in capitals, with no period,
    before a word that is not ("Logitech MX Master", "MS Word", "DR Congo"; "MS. Smith", "MS SMITH" and
    "Mx Smith" are titles)."""
    word = text[start:start + 40].split(maxsplit=1)
    return bool(word) and not word[0].isupper() and SHOUTED_TITLE.search(text[max(0, start - 8):start]) is not None


def sentence_article(text: str, start: int) -> bool:
    """ "A" opens a sentence at `start` before a word not in capitals: the article ("A Lada Niva was
    seen"), not an initial written without its period ("A SMITH", "Signed: A Smith")."""
    words = text[start:start + 40].split(maxsplit=2)
    return len(words) > 1 and words[0] == "A" and not words[1].isupper() and (
        SENTENCE_START.search(text, max(0, start - 4), start) is not None)


def line_before(text: str, start: int) -> str:
    return text[max(0, start - 48):start]


def cue_before(text: str, start: int) -> bool:
    """The text before `start` marks what follows as a person's name ("Hi", "Dear", "cc:")."""
    before = line_before(text, start)
    return bool(PERSON_BEFORE.search(before) and not shouted_title(text, start) or SIGN_OFF_LINE.search(before))


def person_cue(text: str, start: int, end: int, pronoun: bool = True) -> bool:
    """The text marks the words at [start, end) as a person's; `pronoun=False`: only at the words (a
    cue before, a person's verb or an age after), not a "she" later in the sentence, which may be
    about someone else ("Born in Alba Iulia, she ...")."""
    return cue_before(text, start) or bool(PERSON_AFTER.match(text, end) or (
        pronoun and PRONOUN_AFTER.match(text[end:end + 80])))


def product_context(text: str, start: int, end: int) -> bool:
    """The words of [start, end) or next to it, on its line, speak of software or goods; after a
    possessive they are the owner's ("Tea Buljan's laptop"), not what the words name, and a
    person's verb right after ("X wrote the software") outweighs them."""
    if PERSON_AFTER.match(text, end):
        return False
    line_start = max(text.rfind("\n", 0, start) + 1, start - PRODUCT_REACH)
    if POSSESSIVE.match(text, end):
        return bool(PRODUCT_CONTEXT.search(text[line_start:end]))
    line_end = text.find("\n", end, end + PRODUCT_REACH)
    return bool(PRODUCT_CONTEXT.search(text[line_start:line_end if line_end >= 0 else end + PRODUCT_REACH]))


def place_context(text: str, start: int, end: int) -> bool:
    """A preposition of place or an article right before the words, and nothing at them that makes
    them a person's ("in Tanaka's office", "near Dr. Weber", "the Ivan Horvat who wrote it" stay
    names; "in Alba Iulia, she" is a place)."""
    return (PLACE_BEFORE.search(text[max(0, start - 12):start]) is not None and not POSSESSIVE.match(text, end)
            and not person_cue(text, start, end, pronoun=False))


def determined(text: str, start: int, end: int) -> bool:
    """A determiner right before the words and nothing at them that makes them a person's ("the
    Ivan Horvat who wrote it" stays a name)."""
    return DETERMINER_BEFORE.search(text[max(0, start - 8):start]) is not None and not (
        strong_cue(text, start) or person_cue(text, start, end, pronoun=False))


def ends_in_common_noun(value: str) -> bool:
    """ "Jupyter Notebook", "Oracle Database": a product's last word (costs surnames like White)."""
    return value.split()[-1].lower() in common_words()


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
