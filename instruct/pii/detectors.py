"""PII detectors: a cheap regex proposes candidates, a validator rejects look-alikes.

Every detector returns spans on the original text; `find_pii` resolves overlaps by type
priority. Validators carry the knowledge that separates PII from its decoys: Luhn and issuer
prefixes for cards, mod-97 and country lengths for IBANs, SSA rules for SSNs, octet ranges and
version/OID context for IPv4, `ipaddress` for IPv6, phone metadata (phonenumbers) or NANP rules
for phones, file extensions for e-mail look-alikes (`icon@2x.png`), entropy for generic secrets.
"""
from __future__ import annotations

import ipaddress
import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from instruct.pii.span import Span

TYPES = ("SECRET", "EMAIL", "IBAN", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "PHONE", "ADDRESS", "NAME")  # priority order
DEFAULT_TYPES = TYPES[:-1]  # NAME needs the `ner` extra (spaCy): opt in with `types: [..., NAME]`
PLACEHOLDERS = {"EMAIL": "<EMAIL>", "PHONE": "<PHONE>", "IP_ADDRESS": "<IP_ADDRESS>", "CREDIT_CARD": "<CREDIT_CARD>",
                "IBAN": "<IBAN>", "US_SSN": "<US_SSN>", "SECRET": "<SECRET>", "ADDRESS": "<ADDRESS>", "NAME": "<NAME>"}


Validator = Callable[[str, "re.Match[str]"], "tuple[int, int] | None"]


@dataclass(frozen=True)
class Detector:
    """One regex and its validator (text, match) -> span to replace, or None for a look-alike.

    Speed matters (several MB/s per core): every pattern starts with a literal or a character
    class, never a look-behind or a repeat, so that `re` can skip ahead in C; boundary
    look-behinds come after the first character. `gate` skips texts that cannot match.
    """

    type: str
    pattern: re.Pattern
    validate: Validator | None = None
    gate: Callable[[str], bool] | None = None

    def find(self, text: str) -> Iterator[Span]:
        if self.gate is not None and not self.gate(text):
            return
        for match in self.pattern.finditer(text):
            span = match.span() if self.validate is None else self.validate(text, match)
            if span is not None:
                yield Span(span[0], span[1], self.type)


@dataclass(frozen=True)
class SeededDetector(Detector):
    """For patterns whose first character is common (e-mail local parts, IPv6 hex): find a rare
    seed (`@`, `:`), walk back over the characters the value may start with, match from there."""

    seed: re.Pattern = re.compile("")
    back: frozenset = frozenset()
    reach: int = 64

    def find(self, text: str) -> Iterator[Span]:
        if self.gate is not None and not self.gate(text):
            return
        covered = -1
        for seed in self.seed.finditer(text):
            if seed.start() < covered:
                continue
            start, floor = seed.start(), max(0, seed.start() - self.reach)
            while start > floor and text[start - 1] in self.back:
                start -= 1
            match = self.pattern.search(text, start, min(len(text), seed.end() + 300))
            if match is None or match.start() > seed.start():
                continue
            covered = match.end()
            span = match.span() if self.validate is None else self.validate(text, match)
            if span is not None:
                yield Span(span[0], span[1], self.type)


@dataclass(frozen=True)
class ClusterDetectors:
    """Numeric detectors (cards, SSNs, IPv4, phones) run only inside clusters of digits and
    separators long enough to hold a value: one scan of the text instead of one per pattern.
    Look-behinds still see the text before a cluster; the window ends a few characters after it
    so that look-aheads see what follows."""

    members: tuple[Detector, ...]
    cluster: re.Pattern = re.compile(r"[\d+(][\d .()+-]{6,}")

    @property
    def type(self) -> str:
        return "+".join(sorted({d.type for d in self.members}))

    def spans_by_detector(self, text: str) -> list[list[Span]]:
        found: list[list[Span]] = [[] for _ in self.members]
        windows = [(m.start(), min(len(text), m.end() + 3)) for m in self.cluster.finditer(text)]
        if not windows:
            return found
        for slot, detector in enumerate(self.members):
            if detector.gate is not None and not detector.gate(text):
                continue
            for start, end in windows:
                for match in detector.pattern.finditer(text, start, end):
                    span = match.span() if detector.validate is None else detector.validate(text, match)
                    if span is not None:
                        found[slot].append(Span(span[0], span[1], detector.type))
        return found


@dataclass(frozen=True)
class KeywordDetector(Detector):
    """For case-insensitive patterns that start with a keyword: find the keywords with str.find
    on the lower-cased text (C speed), then match the pattern there."""

    keywords: tuple[str, ...] = ()

    def find(self, text: str) -> Iterator[Span]:
        lowered = text.lower()
        if len(lowered) != len(text):  # rare characters that change length when lower-cased
            yield from super().find(text)
            return
        starts = sorted({i for word in self.keywords for i in _occurrences(lowered, word)})
        covered = -1
        for start in starts:
            if start < covered:
                continue
            match = self.pattern.match(text, start)
            if match is None:
                continue
            covered = match.end()
            span = match.span() if self.validate is None else self.validate(text, match)
            if span is not None:
                yield Span(span[0], span[1], self.type)


def _occurrences(text: str, word: str) -> Iterator[int]:
    position = text.find(word)
    while position != -1:
        yield position
        position = text.find(word, position + 1)


def _contains(*needles: str) -> Callable[[str], bool]:
    return lambda text: any(n in text for n in needles)


def _context(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width):start].lower()


# --- e-mail ---------------------------------------------------------------------------------------

FILE_EXTENSIONS = frozenset("png jpg jpeg gif svg webp bmp ico tif tiff avif heic css js mjs ts map pdf txt md json "
                            "xml html htm yaml yml py rb go rs java mp3 mp4 mov wav ogg woff woff2 ttf otf eot zip "
                            "gz tgz bz2 xz whl exe dll so dylib".split())
EMAIL = re.compile(r"[A-Za-z0-9](?<![\w.%+-][A-Za-z0-9])(?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
                   r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-]|\.[A-Za-z0-9])")
EMAIL_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")


def _email(text: str, match: re.Match) -> tuple[int, int] | None:
    return None if match.group(1).lower() in FILE_EXTENSIONS else match.span()


# --- phones ---------------------------------------------------------------------------------------

PHONE_END = r"(?![\w@]|[.,-]\d)"
PHONE_INTL = re.compile(r"\+(?<![\w+]\+)\d{1,3}(?:[ .-]?\(0\))?(?:[ .-]?\(\d{1,5}\)|[ .-]?\d{1,5})"
                        r"(?:[ .-]?\d{1,5}){0,4}[ .-]?\d{2,5}"
                        + PHONE_END)
PHONE_US = re.compile(  # the first character is consumed, then checked by look-behinds (see Detector)
    r"[(\d](?<![\w+@/#$][(\d])(?<!\d[.,-][(\d])"
    r"(?:(?<=1)[ .-]?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # 1-800-555-0199
    r"|(?<=\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (415) 555-2671
    r"|(?<=\d)\d{2}[ .-]\d{3}[ .-]\d{4}"  # 415-555-2671, 415.555.2671
    r"|(?<=\d)\d{9,10})"  # bare digits: only next to a phone keyword
    + PHONE_END)
PHONE_WORDS = re.compile(r"(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text me|contact|ph)\W{0,4}\S{0,3}$")
NANP = re.compile(r"1?([2-9]\d\d)([2-9]\d\d)(\d{4})")


def _phone_pattern(text: str, match: re.Match) -> tuple[int, int] | None:
    """Hand-written rules: NANP area/exchange for US shapes, E.164 length for +CC numbers."""
    candidate = match.group()
    digits = re.sub(r"\D", "", candidate)
    if candidate.startswith("+"):
        if digits.startswith("1"):
            return match.span() if NANP.fullmatch(digits) else None
        return match.span() if 8 <= len(digits) <= 15 else None
    if candidate.isdigit() and not PHONE_WORDS.search(_context(text, match.start())):
        return None
    return match.span() if NANP.fullmatch(digits) else None


def _phone_metadata(text: str, match: re.Match) -> tuple[int, int] | None:
    """Same candidates, validated against libphonenumber's per-country numbering plans; North-American
    shapes only need the NANP rule (an unassigned but well-formed area code is still someone's number
    to scrub: recall first)."""
    import phonenumbers

    candidate = match.group()
    if candidate.isdigit() and not PHONE_WORDS.search(_context(text, match.start())):
        return None
    if not candidate.startswith("+") or candidate.startswith("+1"):
        return match.span() if NANP.fullmatch(re.sub(r"\D", "", candidate)) else None
    try:
        number = phonenumbers.parse(candidate, "US")
    except phonenumbers.NumberParseException:
        return None
    return match.span() if phonenumbers.is_valid_number(number) else None


# --- IP addresses ---------------------------------------------------------------------------------

IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
VERSION_CUES = re.compile(r"(?:\bv|\bversion|\bver|release|build|firmware|update|upgrade|rev|revision|patch|tag|"
                          r"oid|object identifier|arc|sdk|kernel|python|java|node|chrome|firefox|windows|ios|android)"
                          r"\W{0,3}(?:(?:to|from|is|of|=)\W{0,3})?$")
IP_CUES = re.compile(r"(?:\bip|ipv4|address|addr|host|server|gateway|dns|proxy|client|peer|router|subnet|ping|"
                     r"from|to|at|via|nameserver|resolver)\W{0,3}$")


def _ipv4(text: str, match: re.Match) -> tuple[int, int] | None:
    """Valid octets, no version/OID cue before; an OID-shaped quad (first arc 0-2, second < 40,
    like 2.5.4.3 or 1.2.3.4) needs an explicit network cue."""
    octets = match.group().split(".")
    if any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets):
        return None
    context = _context(text, match.start(), 24)
    if VERSION_CUES.search(context):
        return None
    if int(octets[0]) <= 2 and int(octets[1]) < 40 and not IP_CUES.search(context):
        return None
    return match.span()


IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])")
IPV6_SEED = re.compile(r":[0-9A-Fa-f:]")
HEX_OR_COLON = frozenset(string.hexdigits + ":")


def _ipv6(text: str, match: re.Match) -> tuple[int, int] | None:
    candidate = match.group()
    if sum(1 for group in candidate.split(":") if group) < 2:
        return None
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return match.span()


# --- cards, IBANs, SSNs ---------------------------------------------------------------------------

CARD = re.compile(r"\d(?<![\w.,-]\d)(?<!\d \d)(?:\d{3}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"
                  r"|\d{3}([ -])\d{6}\2\d{4,5}|\d{12,18})(?!\w|[ .,-]\d)")
CARD_BRANDS = (  # (issuer prefix ranges, allowed lengths)
    ((("4", "4"),), (13, 16, 19)),  # Visa
    ((("51", "55"), ("2221", "2720")), (16,)),  # Mastercard
    ((("34", "34"), ("37", "37")), (15,)),  # Amex
    ((("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), (16, 17, 18, 19)),  # Discover
    ((("300", "305"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),  # Diners
    ((("3528", "3589"),), (16, 17, 18, 19)),  # JCB
    ((("62", "62"),), (16, 17, 18, 19)),  # UnionPay
    ((("6304", "6304"), ("6759", "6759"), ("676770", "676774")), tuple(range(12, 20))),  # Maestro (UK)
)
NOT_CARD_CUES = re.compile(r"(?:track\w*|order|invoice|parcel|shipment|isbn|serial|ref|reference|no\.?|#)"
                           r"\W{0,3}(?:number|no\.?|id|#)?\W{0,3}$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_issuer_known(digits: str) -> bool:
    for ranges, lengths in CARD_BRANDS:
        if len(digits) in lengths and any(low <= digits[:len(low)] <= high for low, high in ranges):
            return True
    return False


def _card(text: str, match: re.Match) -> tuple[int, int] | None:
    digits = re.sub(r"\D", "", match.group())
    if not (card_issuer_known(digits) and luhn_valid(digits)):
        return None
    return None if NOT_CARD_CUES.search(_context(text, match.start(), 24)) else match.span()


IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BR=29, BY=28, CH=21, CR=22, CY=28, CZ=24, DE=22,
    DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FO=18, FR=27, GB=22, GE=22, GI=23, GL=18, GR=27, GT=28, HR=21, HU=28,
    IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20, LB=28, LC=32, LI=21, LT=20, LU=20, LV=21, MC=27, MD=24,
    ME=22, MK=19, MR=27, MT=31, MU=30, NL=18, NO=15, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, SA=24, SC=31,
    SE=24, SI=19, SK=24, SM=27, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20,
    # joined the SWIFT registry since 2020
    BI=27, DJ=27, FK=18, HN=28, LY=25, MN=20, NI=28, OM=23, RU=33, SD=18, SO=23, YE=30)
IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d\d(?: ?[A-Z0-9]){11,30}\b")


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban(text: str, match: re.Match) -> tuple[int, int] | None:
    """Cut the candidate at the country's length (the regex may run into the next word), then mod-97."""
    length = IBAN_LENGTHS.get(match.group()[:2])
    if length is None:
        return None
    seen = 0
    for offset, char in enumerate(match.group()):
        if char != " ":
            seen += 1
            if seen == length:
                end = match.start() + offset + 1
                compact = text[match.start():end].replace(" ", "")
                if text[end:end + 1].isalnum():
                    return None  # runs on without a break: not an IBAN of this country
                return (match.start(), end) if iban_valid(compact) else None
    return None


SSN = re.compile(r"\d(?<![\w-]\d)\d\d([- ])\d\d\1\d{4}(?![\w-]|[.,]\d)")
SSN_BARE = re.compile(r"\d(?<![\w-]\d)\d{8}(?![\w-]|[.,]\d)")
SSN_WORDS = re.compile(r"(?:ssn|social security(?: number| no\.?)?|ss#|soc\. sec\.)\W{0,4}(?:is|was|:)?\W{0,3}$")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ssn(text: str, match: re.Match) -> tuple[int, int] | None:
    value = match.group()
    if match.group(1) == " " and not SSN_WORDS.search(_context(text, match.start())):
        return None  # space-separated groups are only an SSN when introduced as one
    return match.span() if ssn_valid(value[:3], value[4:6], value[7:]) else None


def _bare_ssn(text: str, match: re.Match) -> tuple[int, int] | None:
    value = match.group()
    if not SSN_WORDS.search(_context(text, match.start())):
        return None
    return match.span() if ssn_valid(value[:3], value[3:5], value[5:]) else None


# --- secrets --------------------------------------------------------------------------------------

SECRET_TOKENS = [re.compile(p) for p in (  # each starts with a literal: found at C speed
    r"A(?<![\w]A)(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)[A-Z0-9]{16}\b",  # AWS access key id
    r"gh(?<!\wgh)[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{22,255}\b",
    r"xox(?<!\wxox)[abposr]-[A-Za-z0-9-]{10,250}",  # Slack tokens
    r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",  # Slack webhooks
    r"sk_(?<!\wsk_)(?:live|test)_[A-Za-z0-9]{16,247}\b",  # Stripe secret and restricted keys
    r"rk_(?<!\wrk_)(?:live|test)_[A-Za-z0-9]{16,247}\b",
    r"whsec_[A-Za-z0-9]{24,}\b",
    r"AIza(?<!\wAIza)[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",  # Google API key
    r"sk-(?<!\wsk-)(?:proj-|ant-)?[A-Za-z0-9_-]{32,}\b",  # OpenAI / Anthropic
    r"hf_(?<!\whf_)[A-Za-z]{30,}\b",  # Hugging Face
    r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
)]
PRIVATE_KEY = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK|)-----[\s\S]*?"
                         r"-----END \1PRIVATE KEY\2-----")
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "api_key", "api-key", "apikey", "access_key",
                "access-key", "auth_key", "auth-key", "private_key", "private-key", "credential")
ASSIGNMENT = re.compile(
    r"(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credentials?)[\w.-]*[\"']?\s*(?::=|=>|[:=])\s*[\"']?"
    r"([A-Za-z0-9_\-+/=.~!@#$%^&*]{12,256})")


SECRET_CUES = re.compile(r"(?i)aws|secret|\bkey\b|_key|key_|token|credential")


def _mentions_secret(text: str) -> bool:
    return SECRET_CUES.search(text) is not None
PLACEHOLDER_VALUE = re.compile(r"(?i)^(?:x+|\*+|changeme|password\d*|secret|example\w*|your[\w-]*|dummy\w*|"
                               r"placeholder\w*|none|null|true|false|undefined|redacted)$")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _aws_secret(text: str, match: re.Match) -> tuple[int, int] | None:
    value = match.group()
    if not (any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value)):
        return None  # hex digests and all-caps ids are not AWS secrets
    if "/" not in value and "+" not in value and not SECRET_CUES.search(_context(text, match.start(), 48)):
        return None  # without base64 punctuation, only next to a cue word (AWS, secret, key, token)
    return match.span() if entropy(value) >= 4.0 else None


def _assigned_secret(text: str, match: re.Match) -> tuple[int, int] | None:
    value = match.group(1).rstrip(".,;")
    if PLACEHOLDER_VALUE.match(value) or len(value) < 12:
        return None
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
                   any(not c.isalnum() for c in value)))
    if re.fullmatch(r"[a-z_]+(?:\.[a-z_]+)*", value) or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_.]+", value):
        return None  # an identifier or attribute path, not a literal
    if classes < 2 or entropy(value) < 3.0:
        return None
    return match.start(1), match.start(1) + len(value)


# --- street addresses -----------------------------------------------------------------------------

_STREET_TYPES = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
                 r"Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Plz|Alley|Loop|Close|Crescent|"
                 r"Gardens|Grove|Mews|Hill|Walk|Green|Row|Parade")
_NAME = r"(?:[A-Z][a-z][A-Za-z'’-]*\.?|\d{1,3}(?:st|nd|rd|th))"  # Baker, St., 34th
UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
ADDRESS = re.compile(
    r"\d(?<!\w\d)\d{0,5}[A-Z]?(?:-\d{1,4})?,?\s+(?:[NSEW]\.?\s+)?(?:" + _NAME + r"\s+){0,3}" + _NAME +
    r"\s+(?:" + _STREET_TYPES + r")\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Room|#)\.?\s*#?[A-Za-z0-9-]{1,6})?"
    r"(?:,\s*(?:" + _NAME + r"\s){0,2}" + _NAME + r"(?:,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?|,?\s+" + UK_POSTCODE +
    r"\b|,\s*[A-Z]{2}\b)?|,?\s+" + UK_POSTCODE + r")?")
PO_BOX = re.compile(r"P(?<!\wP)\.?\s?O\.?\s+Box\s+\d{1,6}\b")
UNIT_BEFORE = re.compile(r"(?:Flat|Apartment|Apt|Unit|Suite)\s+\w{1,5},?\s+$")


def _address(text: str, match: re.Match) -> tuple[int, int] | None:
    start, end = match.span()
    unit = UNIT_BEFORE.search(text, max(0, start - 24), start)
    if unit:
        start = unit.start()
    while end > start and text[end - 1] in ".,":  # a sentence's full stop is not part of the address
        end -= 1
    return start, end


# --- assembly -------------------------------------------------------------------------------------

def detectors(phone_validator: str = "phonenumbers", types: tuple[str, ...] | list[str] = DEFAULT_TYPES,
              name_model: str = "spacy", name_judge: float | None = None) -> list:
    """The detectors of the wanted types, in TYPES priority order (`name_model`: spacy, spacy-md, spacy-sm+md or
    cues; `name_judge`: the LM judge's threshold for names, None for none)."""
    phone = _phone_metadata if phone_validator == "phonenumbers" else _phone_pattern
    wanted = []
    for detector in _all_detectors(phone, types, name_model, name_judge):
        if isinstance(detector, ClusterDetectors):
            members = tuple(d for d in detector.members if d.type in types)
            if members:
                wanted.append(ClusterDetectors(members))
        elif detector.type in types:
            wanted.append(detector)
    return wanted


def _all_detectors(phone: Validator, types: tuple[str, ...] | list[str] = TYPES, name_model: str = "spacy",
                   name_judge: float | None = None) -> list:
    return [
        Detector("SECRET", PRIVATE_KEY, gate=_contains("PRIVATE KEY-----")),
        *(Detector("SECRET", pattern) for pattern in SECRET_TOKENS),
        KeywordDetector("SECRET", ASSIGNMENT, _assigned_secret, keywords=SECRET_WORDS),
        Detector("SECRET", AWS_SECRET, _aws_secret, gate=_mentions_secret),
        SeededDetector("EMAIL", EMAIL, _email, gate=_contains("@"), seed=re.compile("@"), back=EMAIL_LOCAL),
        Detector("IBAN", IBAN, _iban),
        ClusterDetectors((Detector("CREDIT_CARD", CARD, _card), Detector("US_SSN", SSN, _ssn),
                          Detector("US_SSN", SSN_BARE, _bare_ssn, gate=_contains("SSN", "ssn", "ocial", "SS#")),
                          Detector("IP_ADDRESS", IPV4, _ipv4),
                          Detector("PHONE", PHONE_INTL, phone, gate=_contains("+")),
                          Detector("PHONE", PHONE_US, phone))),
        SeededDetector("IP_ADDRESS", IPV6, _ipv6, seed=IPV6_SEED, back=HEX_OR_COLON, reach=40),
        Detector("ADDRESS", ADDRESS, _address),
        Detector("ADDRESS", PO_BOX),
        *([_name_detector(name_model, name_judge)] if "NAME" in types else []),
    ]


def _name_detector(name_model: str, judge: float | None) -> Any:
    from instruct.pii.names import NameDetector

    cues = name_model == "cues"
    return NameDetector(model=not cues, name_model="spacy" if cues else name_model, judge=judge)


def find_pii(text: str, active: list) -> list[Span]:
    """Non-overlapping spans, earlier detectors (higher priority) winning overlaps; sorted by start."""
    taken: list[Span] = []
    for detector in active:
        groups = detector.spans_by_detector(text) if isinstance(detector, ClusterDetectors) else [detector.find(text)]
        for spans in groups:
            for span in spans:
                if all(span.end <= other.start or span.start >= other.end for other in taken):
                    taken.append(span)
    return sorted(taken, key=lambda s: s.start)



def redact(text: str, spans: list[Span], placeholders: dict[str, str]) -> str:
    parts, position = [], 0
    for span in spans:
        parts.append(text[position:span.start])
        parts.append(placeholders[span.type])
        position = span.end
    parts.append(text[position:])
    return "".join(parts)
