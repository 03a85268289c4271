"""PII scrubbing benchmark: recall and precision per type, decoys left alone, MB/s on one core.

A labeled set is built at run time: real prose (Python stdlib docstrings) with inserted values of
every PII type in several formats, and inserted look-alikes of every decoy class (ISBNs, version
strings, OIDs, dates and times, hex hashes, UUIDs, order and tracking numbers, Luhn-failing cards,
bad-checksum IBANs, invalid SSNs, out-of-range dotted quads, retina file names). A value counts
as found when one detection of its type covers it entirely; a detection is correct when it
overlaps a value of its type. Phone validation is measured three ways (our candidates +
libphonenumber metadata, our candidates + hand-written NANP/E.164 rules, and libphonenumber's
own PhoneNumberMatcher) to choose the default.

    python bench/pii_bench.py [--docs 3000] [--seed 0]
    python bench/pii_bench.py --real [--docs 1500]     # real-world formats, per subtype, + person names
    python bench/pii_bench.py --real --judge-sweep -1,0,1   # the LM judge's threshold on development sets

--real (issue 21): values generated from the formats' specifications rather than from examples the
detectors were written against: IBANs of every country of the registry (random alphanumeric BBAN,
ISO 7064 check digits; compact and grouped), NANP numbers with any area/exchange code the NANP
plan allows (assigned or not) in every common notation, AWS secret keys next to a cue word and
high-entropy values assigned to key/secret/token/password names in Python, YAML, JSON, shell and
.env lines, public and private IPv4, and person names in eight template sets: (1) the ones the name
cues were written against, (2, 3) written after them, (4) letters, tickets, commit messages,
bylines, cc lines and code, (5) written with (4), held out for one round, since used to develop,
(6) chat logs, CSV rows, legal text, datelines, citations, "FAMILY Given", quotes, signatures,
dialogue: held out for one round, a development set since round 4, (7) e-mail headers, minutes,
upper-case bylines, review sign-offs "Given F.", forum posts, acknowledgements, envelopes, medical
and HR notes, semicolon lists, "Family, Given": held out for rounds 4-5, a development set since
round 6, (8) commit trailers, Debian control fields, copyright lines, LaTeX/BibTeX, log lines,
cheques, leases, credits, auctions, race results, patents, hotel mail, HTML meta: held out for
round 6, a development set since round 7, (9) vCards, calendar invites, git blame, screenplays,
boarding passes, chess PGN, probate notices, wiki infoboxes, SQL rows, man pages, RFC addresses and
references, memorials, team sheets: held out for rounds 7-8, a development set since round 9, (10) 98
templates in styles none of the earlier sets has, written by someone who had not read the detectors
(pii_sets_10.py), split in halves by a hash: 10_dev to develop on, 10_dev2 held out for rounds 9-10
and a development set since round 11, (11) 110 templates of railway and airline papers, box scores,
transcripts, bills of lading, census and cemetery records, tax forms, changelogs, chat exports and
letters in thirteen languages, written likewise (pii_sets_11.py), held out whole: measured and never
looked at for misses (names in 4-11
from Faker's locales: diacritics, particles, initials, hyphens; set 7 half from 14 locales no other
set uses, set 8 half from 11 more, Cyrillic, Greek, Armenian and Georgian ones romanised, set 9 half
from Korean, Hindi and Nepali ones romanised, set 10 half from Bengali and Marathi ones, set 11 half
from Gujarati and Odia ones; see
pii_romanise.py). Decoys: product names (seven
lists; products 6-8 development sets, products 9 of software, goods, companies and projects, and
products 10's nine kinds: development; products 11's nine kinds (trains and ships, instruments, films,
venues, sports, medicines, drinks, tools, awards): held out), place names (time zone
database, Faker's towns of fifteen countries, states, provinces, counties and towns of eleven more,
nine more lists of neighbourhoods, provinces and countries: development; country names in seven more
languages and Portugal's municipalities: held out), Debian description pairs and code
identifiers.
NAME needs the `ner` extra (spaCy) and Faker (`bench` extra); the NAME detectors are compared side
by side (each installed spaCy model alone, cue patterns alone, cues + each model).
"""
from __future__ import annotations

import argparse
import random
import re
import string
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from instruct.corpus import stdlib_docstrings
from instruct.pii.detectors import (
    DEFAULT_TYPES,
    IBAN_LENGTHS,
    Span,
    detectors,
    find_pii,
    luhn_valid,
)

sys.path.insert(0, str(Path(__file__).parent))
from pii_romanise import latin, romanise  # noqa: E402
from pii_sets_10 import (  # noqa: E402
    FAKER_LOCALES_10,
    NAME_TEMPLATES_10,
    PLACE_10_LISTS,
    PLACE_10_TEMPLATES,
    PRODUCTS_10,
)
from pii_sets_11 import (  # noqa: E402
    FAKER_LOCALES_11,
    NAME_TEMPLATES_11,
    PLACE_11_LISTS,
    PLACE_11_TEMPLATES,
    PRODUCTS_11,
)

# --- value generators ---------------------------------------------------------------------------

FIRST = ["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth", "wei",
         "aisha", "olga", "raj", "sofia"]
LAST = ["smith", "johnson", "brown", "garcia", "miller", "davis", "wilson", "anderson", "taylor", "thomas", "moore",
         "martin", "lee", "chen", "patel"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni.example.edu", "example.co.uk",
           "startup.example.io"]
US_AREAS = ["201", "212", "213", "305", "312", "404", "415", "503", "602", "617", "646", "702", "713", "718", "773",
            "808", "917", "972", "206", "303"]
PHONE_REGIONS = ["GB", "DE", "FR", "IN", "JP", "AU", "ES", "IT", "BR", "CN", "NL", "MX", "SE", "CH", "KR", "ZA"]
STREETS = ["Maple", "Oak", "Washington", "Lincoln", "Park", "Lake", "Hill", "Cedar", "Elm", "Pine", "Main",
           "Church", "Highland", "Sunset", "Jefferson", "Madison", "Baker", "Victoria", "Station", "Mill", "King",
           "Queen", "High", "Bridge"]
US_TYPES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive", "Dr",
            "Court", "Ct", "Way", "Place", "Terrace"]
UK_TYPES = ["Road", "Street", "Lane", "Close", "Crescent", "Gardens", "Avenue", "Grove", "Way"]
CITIES = [("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR"), ("Boston", "MA"), ("Denver", "CO"),
          ("New York", "NY"), ("San Jose", "CA"), ("Madison", "WI")]
UK_TOWNS = ["London", "Oxford", "Leeds", "Bristol", "Manchester", "York", "Cardiff"]

TEMPLATES = {
    "EMAIL": ["Contact {v} for details.", "Send questions to <{v}>.", "(reported by {v})", "Email: {v}",
              "mailto:{v}", "{v}; cc the list"],
    "PHONE": ["Call {v} for support.", "Phone: {v}", "reach us at {v} today", "Tel. {v}", "mobile {v}."],
    "IP_ADDRESS": ["Requests from {v} were blocked.", "server at {v}", "The host {v} responded.",
                   "connect to {v} and retry", "listening on {v} port 8080", "({v})"],
    "CREDIT_CARD": ["Card number {v} was charged.", "paid with {v}.", "CC: {v}"],
    "IBAN": ["Transfer to IBAN {v} by Friday.", "account {v}", "IBAN: {v}."],
    "US_SSN": ["SSN {v} on file.", "social security number: {v}", "her SSN is {v}."],
    "SECRET": ["{v}", "Use {v} in the config.", "export {v}"],
    "ADDRESS": ["Ship to {v}.", "Our office is at {v}.", "lives at {v} since 2010"],
}
DECOY_TEMPLATES = {
    "isbn": ["ISBN {v}", "see ISBN {v}.", "(ISBN {v})"],
    "version": ["{v}"],
    "oid": ["OID {v}", "object identifier {v}", "{v}"],
    "datetime": ["on {v}", "at {v}", "Timestamp {v}."],
    "hex_hash": ["commit {v}", "sha256: {v}", "MD5 {v}", "checksum {v}."],
    "uuid": ["UUID {v}", "request id {v}", "{v}"],
    "order_number": ["Order #{v}", "order no. {v}", "Invoice {v}", "order {v} shipped"],
    "tracking_number": ["tracking number {v}", "Tracking: {v}", "parcel {v}"],
    "luhn_failing_card": ["card {v} was declined", "number {v}"],
    "bad_iban": ["IBAN {v}", "account {v}"],
    "invalid_ssn": ["SSN {v}", "ssn: {v}", "ID {v}"],
    "bad_dotted_quad": ["value {v}", "address {v} is invalid", "{v}"],
    "retina_file": ["<img src=\"{v}\">", "use {v} for HiDPI", "{v}"],
}


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + digits(rng, length - len(prefix) - 1)
    return next(body + d for d in string.digits if luhn_valid(body + d))


def card_number(rng: random.Random) -> tuple[str, str]:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("4", 13), ("3528", 16), ("36", 14)])
    return luhn_complete(rng, prefix, length), prefix


def format_card(rng: random.Random, number: str) -> str:
    sep = rng.choice([" ", "-", ""])
    if len(number) == 15:
        return sep.join([number[:4], number[4:10], number[10:]]) if sep else number
    if len(number) == 16:
        return sep.join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(["DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL", "SE", "NO", "IE"])
    length = IBAN_LENGTHS[country]
    if country in ("GB", "IE") or country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + digits(rng, length - 8)
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + digits(rng, length - 5)
    else:
        bban = digits(rng, length - 4)
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - numeric % 97
    if not valid:
        check = rng.choice([c for c in range(2, 99) if c != check])
    compact = f"{country}{check:02d}{bban}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.6 else compact


def phone(rng: random.Random) -> str:
    import phonenumbers

    if rng.random() < 0.55:
        area, exchange, line = rng.choice(US_AREAS), str(rng.randint(200, 999)), digits(rng, 4)
        style = rng.randrange(7)
        return [f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
                f"+1 {area} {exchange} {line}", f"+1-{area}-{exchange}-{line}", f"1-800-{exchange}-{line}",
                f"+1 ({area}) {exchange}-{line}"][style]
    region = rng.choice(PHONE_REGIONS)
    kind = rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
    example = phonenumbers.example_number_for_type(region, kind)
    national = str(example.national_number)
    for _ in range(50):  # real numbering plans: vary the subscriber digits, keep the number valid
        candidate = national[:-4] + digits(rng, 4)
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 203, 198, 8, 34, 52, 104, 151])
    return ".".join(str(x) for x in [first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)])


def ipv6(rng: random.Random) -> str:
    import ipaddress

    groups = ["2001", "db8"] + [f"{rng.randint(0, 0xffff):x}" for _ in range(6)]
    if rng.random() < 0.5:
        groups[3:5] = ["0", "0"]
    address = ipaddress.IPv6Address(":".join(groups))
    return address.compressed if rng.random() < 0.7 else address.exploded


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def base64ish(rng: random.Random, n: int, extra: str = "") -> str:
    alphabet = string.ascii_letters + string.digits + extra
    return "".join(rng.choice(alphabet) for _ in range(n))


def secret(rng: random.Random) -> str | tuple[str, str]:
    """A secret, or (key part, secret value) for assignments, where only the value is the secret."""
    kind = rng.randrange(9)
    if kind == 0:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    if kind == 1:
        value = base64ish(rng, 38, "/+") + rng.choice("/+") + rng.choice(string.digits)
        return "aws_secret_access_key = ", value
    if kind == 2:
        return "ghp_" + base64ish(rng, 36)
    if kind == 3:
        return f"xoxb-{digits(rng, 12)}-{digits(rng, 13)}-{base64ish(rng, 24)}"
    if kind == 4:
        return "sk_live_" + base64ish(rng, 24)
    if kind == 5:
        return "AIza" + base64ish(rng, 35, "_-")
    if kind == 6:
        body = "\n".join(base64ish(rng, 64, "+/") for _ in range(4))
        return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    if kind == 7:
        return "DB_PASSWORD=", base64ish(rng, 20, "!#%&")
    return 'api_key: "', base64ish(rng, 32)


def address(rng: random.Random) -> str:
    number = str(rng.randint(1, 9999))
    if rng.random() < 0.6:
        street = f"{number} {rng.choice(STREETS)} {rng.choice(US_TYPES)}"
        if rng.random() < 0.3:
            street += f", Apt {rng.randint(1, 40)}"
        if rng.random() < 0.7:
            city, state = rng.choice(CITIES)
            street += f", {city}, {state} {digits(rng, 5)}"
        return street
    street = f"{number}{rng.choice(['', 'A', 'B']) if rng.random() < 0.2 else ''} {rng.choice(STREETS)} " \
             f"{rng.choice(UK_TYPES)}"
    postcode = f"{rng.choice(['SW1A', 'NW1', 'OX1', 'LS2', 'M1', 'BS8', 'EC2A'])} {rng.randint(1, 9)}" \
               f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    return f"{street}, {rng.choice(UK_TOWNS)} {postcode}"


def email(rng: random.Random) -> str:
    user = rng.choice([f"{rng.choice(FIRST)}.{rng.choice(LAST)}", f"{rng.choice(FIRST)}{rng.randint(1, 99)}",
                       f"{rng.choice(FIRST)[0]}{rng.choice(LAST)}+news", f"{rng.choice(FIRST)}_{rng.choice(LAST)}"])
    value = f"{user}@{rng.choice(DOMAINS)}"
    return value.title() if rng.random() < 0.1 else value


GENERATORS = {"EMAIL": email, "PHONE": phone, "IP_ADDRESS": lambda r: ipv4(r) if r.random() < 0.6 else ipv6(r),
              "CREDIT_CARD": lambda r: format_card(r, card_number(r)[0]), "IBAN": iban, "US_SSN": ssn,
              "SECRET": secret, "ADDRESS": address}


def isbn(rng: random.Random) -> str:
    if rng.random() < 0.5:
        body = "978" + digits(rng, 9)
        check = (10 - sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(body)) % 10) % 10
        full = body + str(check)
        return f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}" if rng.random() < 0.7 else full
    body = digits(rng, 9)
    check = (11 - sum((10 - i) * int(c) for i, c in enumerate(body)) % 11) % 11
    full = body + ("X" if check == 10 else str(check))
    return f"{full[0]}-{full[1:4]}-{full[4:9]}-{full[9]}"


def version(rng: random.Random) -> str:
    parts = [str(rng.randint(0, 20)), str(rng.randint(0, 30)), str(rng.randint(0, 200)), str(rng.randint(0, 99))]
    value = ".".join(parts[:rng.choice([3, 4, 4])])
    return rng.choice([f"version {value}", f"v{value}", f"release {value}", f"Python {value}", f"build {value}",
                       f"upgrade to {value}", f"firmware {value}"])


def oid(rng: random.Random) -> str:
    return rng.choice(["1.2.840.113549.1.1.11", "1.3.6.1.4.1.311.21.20", "2.5.4.3", "2.5.29.17", "1.3.6.1.5.5.7.3.1",
                       f"1.3.6.1.4.1.{rng.randint(1, 60000)}.{rng.randint(1, 9)}", "0.9.2342.19200300.100.1.25"])


def datetime_value(rng: random.Random) -> str:
    y, m, d, hh, mm, ss = (rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                           rng.randint(0, 59), rng.randint(0, 59))
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d:02d}.{m:02d}.{y}",
                       f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z", f"{hh:02d}:{mm:02d}:{ss:02d}",
                       f"{y}{m:02d}{d:02d} {hh:02d}{mm:02d}", f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}"])


def hex_hash(rng: random.Random) -> str:
    value = "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([32, 40, 64])))
    return value.upper() if rng.random() < 0.2 else value


def uuid_value(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def order_number(rng: random.Random) -> str:
    return rng.choice([f"{digits(rng, 3)}-{digits(rng, 7)}-{digits(rng, 7)}", digits(rng, 10), f"PO-2023-{digits(rng, 6)}",
                       f"INV-{digits(rng, 8)}", digits(rng, 12), f"{digits(rng, 4)}-{digits(rng, 4)}-{digits(rng, 4)}"])


def tracking_number(rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    usps = "9400" + digits(rng, 18)
    return rng.choice(["1Z" + "".join(rng.choice(upper) for _ in range(6)) + digits(rng, 10),
                       " ".join(usps[i:i + 4] for i in range(0, 22, 4)), usps,
                       f"{digits(rng, 4)} {digits(rng, 4)} {digits(rng, 4)}", digits(rng, 15)])


def luhn_failing_card(rng: random.Random) -> str:
    number, _ = card_number(rng)
    wrong = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return format_card(rng, wrong)


def invalid_ssn(rng: random.Random) -> str:
    return rng.choice([f"000-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"666-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"{rng.randint(900, 999)}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"{rng.randint(1, 665):03d}-00-{rng.randint(1, 9999):04d}",
                       f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-0000"])


def bad_dotted_quad(rng: random.Random) -> str:
    octets = [rng.randint(0, 255) for _ in range(4)]
    octets[rng.randrange(4)] = rng.randint(256, 999)
    return ".".join(map(str, octets))


def retina_file(rng: random.Random) -> str:
    return f"{rng.choice(['icon', 'logo', 'sprite', 'avatar', 'hero-banner'])}@{rng.choice([2, 3])}x." \
           f"{rng.choice(['png', 'jpg', 'webp', 'svg', 'gif'])}"


DECOYS = {"isbn": isbn, "version": version, "oid": oid, "datetime": datetime_value, "hex_hash": hex_hash,
          "uuid": uuid_value, "order_number": order_number, "tracking_number": tracking_number,
          "luhn_failing_card": luhn_failing_card, "bad_iban": lambda r: iban(r, valid=False),
          "invalid_ssn": invalid_ssn, "bad_dotted_quad": bad_dotted_quad, "retina_file": retina_file}


# --- labeled set ---------------------------------------------------------------------------------

@dataclass
class Label:
    start: int
    end: int
    kind: str  # a PII type, or "decoy:<class>"
    subtype: str = ""
    form: str = "v"  # NAME: as written, v "Given Family", rev "FAMILY Given", cite "Family, G."


def build_set(docs: int, seed: int) -> tuple[list[str], list[list[Label]], list[str]]:
    """Texts with inserted values (each item = 2 PII values + 2 decoys), their labels, and clean texts."""
    rng = random.Random(seed)
    carriers = [doc for _, doc in stdlib_docstrings(limit=docs)]
    texts, labels = [], []
    kinds = [(t, None) for t in DEFAULT_TYPES] + [(None, d) for d in DECOYS]
    for index, carrier in enumerate(carriers):
        picks = [kinds[(index * 4 + k) % len(kinds)] for k in range(4)]
        cut_points = sorted(rng.sample([i for i, c in enumerate(carrier) if c == " "] or [len(carrier)],
                                       k=min(4, max(1, carrier.count(" ")))))
        pieces, doc_labels, position, last = [], [], 0, 0
        for cut, (pii_type, decoy) in zip(cut_points, picks):
            pieces.append(carrier[last:cut] + " ")
            position += cut - last + 1
            last = cut
            value = GENERATORS[pii_type](rng) if pii_type else DECOYS[decoy](rng)
            template = rng.choice(TEMPLATES[pii_type] if pii_type else DECOY_TEMPLATES[decoy])
            before, _, after = template.partition("{v}")
            if isinstance(value, tuple):  # (unlabeled lead-in, value)
                before, value = before + value[0], value[1]
            pieces.append(before)
            position += len(before)
            doc_labels.append(Label(position, position + len(value), pii_type or f"decoy:{decoy}"))
            pieces.append(value + after + " ")
            position += len(value) + len(after) + 1
        pieces.append(carrier[last:])
        texts.append("".join(pieces))
        labels.append(doc_labels)
    return texts, labels, carriers


# --- scoring -------------------------------------------------------------------------------------

def score(all_spans: list[list[Span]], labels: list[list[Label]], types: tuple[str, ...]) -> dict:
    found, total, correct, detected = Counter(), Counter(), Counter(), Counter()
    decoy_total, decoy_hit = Counter(), Counter()
    for spans, doc_labels in zip(all_spans, labels):
        for label in doc_labels:
            if label.kind.startswith("decoy:"):
                decoy_total[label.kind[6:]] += 1
                decoy_hit[label.kind[6:]] += any(s.start < label.end and s.end > label.start for s in spans)
            else:
                total[label.kind] += 1
                found[label.kind] += any(s.type == label.kind and s.start <= label.start and s.end >= label.end
                                         for s in spans)
        for span in spans:  # detections in the carrier text itself are reported apart (see main)
            touched = [lab for lab in doc_labels if span.start < lab.end and span.end > lab.start]
            if touched:
                detected[span.type] += 1
                correct[span.type] += any(lab.kind == span.type for lab in touched)
    per_type = {t: {"recall": found[t] / total[t] if total[t] else float("nan"),
                    "precision": correct[t] / detected[t] if detected[t] else 1.0,
                    "n": total[t], "detections": detected[t]} for t in types}
    return {"types": per_type, "decoys": {d: (decoy_hit[d], decoy_total[d]) for d in decoy_total},
            "decoy_share": sum(decoy_hit.values()) / max(1, sum(decoy_total.values()))}


def run_detectors(texts: list[str], active) -> tuple[list[list[Span]], float]:
    """Spans and CPU seconds (process time: the machine may be shared; this is per core)."""
    started = time.process_time()
    spans = [find_pii(text, active) for text in texts]
    return spans, time.process_time() - started


def matcher_spans(texts: list[str]) -> tuple[list[list[Span]], float]:
    import phonenumbers

    started = time.process_time()
    spans = [[Span(m.start, m.end, "PHONE") for m in phonenumbers.PhoneNumberMatcher(t, "US")] for t in texts]
    return spans, time.process_time() - started


# --- real-world formats (issue 21) ----------------------------------------------------------------

GIVEN = ["Oliver", "Amelia", "Hiroshi", "Yuki", "Fatima", "Mohammed", "Priya", "Arjun", "Chen", "Mei", "Lucas",
         "Sofia", "Kwame", "Amara", "Mateo", "Valentina", "Dmitri", "Anastasia", "Liam", "Emma", "Noah", "Ava",
         "Carlos", "Lucia", "Tomasz", "Agnieszka", "Hannah", "Jonas", "Ingrid", "Lars", "Siobhan", "Declan",
         "Nguyen", "Linh", "Kenji", "Sakura", "Omar", "Layla", "Diego", "Camila", "Erik", "Astrid", "Rahul",
         "Ananya", "Samuel", "Grace"]
FAMILY = ["Thompson", "Nakamura", "Rahman", "Sharma", "Zhang", "Rossi", "Oliveira", "Mensah", "Okafor", "Fernandez",
          "Petrov", "Kowalski", "Schneider", "Johansson", "Murphy", "O'Brien", "Tran", "Tanaka", "Haddad",
          "Morales", "Lindqvist", "Gupta", "Williams", "Mitchell", "Dubois", "Novak", "Andersen", "Costa", "Reyes",
          "Walsh"]
NAME_TEMPLATES = ["My name is {v} and I maintain this module.", "Thanks to {v} for the report.",
                  "Please contact {v} before merging.", "{v} wrote the first version.", "Signed, {v}",
                  "Reviewed-by: {v}", "Ask {v} about the release schedule.", "According to {v}, the fix is safe."]
# written after the cue patterns, to measure them on sentences they were not written against
NAME_HELDOUT_TEMPLATES = ["The patch from {v} fixed the leak.", "{v} joined the team in 2019.",
                          "I met {v} at the conference in Lisbon.", "Hi {v}, the build is green again.",
                          "Co-authored-by: {v}", "Best regards, {v}", "We hired {v} as our new release manager.",
                          "Questions go to {v} or the mailing list.", "{v} (maintainer) approved the change.",
                          "Dear {v}, thank you for your order."]
# written after the second round of cues (salutations, added for the misses on the first held-out set)
NAME_HELDOUT_2_TEMPLATES = ["Many thanks, {v}", "{v} left a comment on the pull request.",
                            "Meeting notes taken by {v}.", "Hello {v}, your ticket was closed.",
                            "Our speaker today is {v}.", "Photo: {v}", "{v} has been promoted to senior engineer.",
                            "Yours sincerely, {v}", "Ping {v} if the job fails.", "Written by {v} in March."]
# written before any detector change of this round, in styles none of the cues was written for
# (letters, meeting notes, commit messages, tickets, bylines, cc lines, author lists); names from Faker
NAME_STYLE_TEMPLATES = ["From: {v}\nTo: release-team\nSubject: tarball checksums", "cc: {v}, ops@example.org",
                        "Attendees: {v}, the build bot, and two interns.",
                        "Action item ({v}): rerun the flaky test on Windows.",
                        "Fix off-by-one in the tokenizer (thanks {v})", "Ticket #4821 opened by {v}: login times out.",
                        "Assigned to {v} on 12 March.", "By {v} | Staff writer",
                        "Authors: {v}, Priya N. and the docs team.", "{v}, who chairs the council, disagreed.",
                        "Sent from my phone -- {v}", "I spoke with {v} yesterday and she agreed to review it.",
                        "Customer {v} reports that the invoice PDF is blank.",
                        "Minutes recorded by {v}; next meeting on Thursday.",
                        "The keynote by {v} was about reproducible builds.", "Warm wishes,\n{v}",
                        "Story by {v}, edited by the night desk.", "{v} committed 3 days ago",
                        "Approved: {v} (release manager)", "Kind regards\n\n{v}\nSenior Support Engineer",
                        '__author__ = "{v}"', "# TODO({v}): drop this shim after 3.13"]
# written with set 4, held out for one round (measured, not looked at); since then a development set
NAME_FINAL_TEMPLATES = ["Onboarding buddy: {v}", "{v} presented the quarterly numbers.",
                        "Letter to the editor from {v}, Leeds", "@here {v} is out of office until Monday.",
                        "Interview with {v}, founder of a small bakery.", "Moved to backlog by {v}.",
                        "Contributors: {v} and others.", "Regards,\n{v}\n--\nSent from the field office",
                        "Requested by {v} on behalf of finance.", "{v}'s laptop needs a new battery.",
                        "Congratulations to {v} on the new role!", "Translated by {v}.",
                        "Call notes: {v} asked for a refund.", "With {v} on vocals, the band played two sets.",
                        "Patient name: {v}", 'authors = ["{v}"]']
# written before the round that used set 5 for development, in styles none of sets 1-5 has (chat logs,
# CSV and table rows, legal text, datelines, citations "Family, G.", "FAMILY Given", quotes, parentheses,
# signatures with titles, dialogue, records in code); measured only for one round, a development set
# since round 4 (set 7 took its place).
# {v}: "Given Family"; {rev}: "FAMILY Given"; {cite}: "Family, G."
NAME_HELD_OUT_6_TEMPLATES = ["[14:02] {v}: anyone else seeing the timeout on staging?",
                             "id,name,team,joined\n1042,{v},payments,2021-03-04",
                             "| {v} | Backend | Berlin | on call |",
                             'This Agreement is made between {v} (the "Licensee") and the Company.',
                             "GENEVA, March 3 - {v}, the fund's treasurer, resigned on Tuesday.",
                             "{cite} and Weber, K. (2019). Sparse hash tables. J. Algorithms 12(3).",
                             "As shown by {cite} (2021), the bound is tight.",
                             "Delegates: {rev} (Japan), and two observers.",
                             "{rev}, born 1988, is listed as the second applicant.",
                             'The form was signed "{v}" but the date is missing.',
                             "The first draft ({v}, 2017) used a lookup table.",
                             "--\n{v}, PhD\nHead of Research, Northwind Ltd.",
                             "Prof. {v}\nDepartment of Physics",
                             '"We ship on Friday," said {v}, "not a day later."',
                             '{v}: "Not before the audit." Moderator: "Next question."',
                             "The court heard evidence from {v}, a former employee.",
                             "{v}, 54, of Dayton, died on Sunday after a short illness.",
                             "Author: {v} <dev@example.org>\nDate: Mon Mar 4 10:12:01 2024",
                             'user = Person(name="{v}", age=41)',
                             "We are grateful to {v} for comments on an earlier draft.",
                             "Witnessed before me, {v}, Notary Public.",
                             "{v} scored twice in the second half."]
# written before round 4's detector changes (2026-12-01 22:30 UTC), in styles none of sets 1-6 has:
# e-mail headers with an address, minutes, upper-case bylines, review sign-offs "Given F.", forum
# posts, acknowledgements, envelopes, medical and HR notes, semicolon lists, "Family, Given"
# directories, case citations, JSON/package.json authors; Faker names, half of them from 14 locales
# no other set draws from. Measured only, never looked at for misses.
# {up}: "GIVEN FAMILY"; {short}: "Given F."; {lf}: "Family, Given"
NAME_HELD_OUT_7_TEMPLATES = ["From: {v} <office@example.net>\nSubject: Re: the venue deposit",
                             "Present: {v}, the treasurer and two volunteers. Apologies: none.",
                             "BY {up}\nPublished 6:04 AM ET", "Great value, would buy again. \u2014 {short}",
                             "Re: build fails on M1\nPosted by {v} \u00bb Tue Jan 09, 2024 8:14 pm",
                             "We thank {v} and the anonymous referees for their comments.",
                             "{v}\n42 Harbour Road\nGalway H91 E2K3", "Pt. {v}, DOB 04/11/1962, presented with chest pain.",
                             "Employee: {v} - probation review passed; salary band B2.",
                             "Judges this year: {v}; a retired teacher; two students.",
                             "Directory\n{lf} .......... ext. 4471", "{v} v. Northwind Ltd [2019] EWHC 114 (Ch)",
                             '"contact": {"name": "{v}", "email": "it@example.com"}',
                             '"author": "{v} <dev@example.org> (https://example.org)"',
                             "While you were out: {v} called about the lease.", "RSVP: {v} +1, vegetarian",
                             "Consignee: {v}, Unit 4, Dock Road", "\u201cIt was chaos,\u201d {v} recalled.",
                             "Name of applicant: {v}", "Attn: {v}, Accounts Payable",
                             "This week's volunteer spotlight: {v}!", "thx {v} merged, will tag tonight",
                             "Surname, given name: {lf}", "Nominated for the prize: {v} (Lisbon)"]
# written on 2026-12-02 before any detector change of round 6, in styles none of sets 1-7 has: commit
# trailers, Debian control fields, copyright lines, LaTeX and BibTeX, log lines, cheques, leases, ride
# hailing, translators' notes, credits, aviation, auctions, race results, checklists, patents, hotel
# mail, bibliographies, HTML meta; names half from 11 locales no other set draws from (Cyrillic, Greek,
# Armenian and Georgian names romanised by the tables below, Taiwanese romanised names, Liechtenstein,
# Luxembourg and Spain). Measured only, never looked at for misses.
NAME_HELD_OUT_8_TEMPLATES = ["Signed-off-by: {v} <maint@example.org>", "Maintainer: {v} <pkg@example.org>\nSection: utils",
                             "Copyright (c) 2018-2024 {v}", "\\author{{v}}\n\\date{\\today}",
                             "@article{key2020,\n  author = {{lf} and Chen, Wei},",
                             "2024-05-01 12:00:03 INFO session opened for user '{v}'",
                             "Emergency contact: {v} (sister)", "Pay to the order of {up}",
                             "Tenant {v} gave notice on 1 June.", "Your driver {v} is arriving in a grey Skoda.",
                             "Translator's note ({short}): the pun does not survive.",
                             "Credits\nMusic: {v}\nEditing: the studio", "Captain {v} radioed the tower at 06:12.",
                             "Lot 14, consigned by {v}, sold for 2,400 EUR.", "Results: 1. {v} 2:14:03, 2. a club runner",
                             "- [ ] ask {v} for the signed NDA", "Inventor: {v}; Assignee: Northwind Ltd.",
                             "{rev} (Team Lead) - out sick today", "Winner of the spelling bee: {v}, aged 11.",
                             "I'm {v}, a nurse from Cork, and I have a question about shifts.",
                             "Thank you for staying with us, {v}! Your room is 412.", "Case officer: {lf}",
                             "Bibliography\n{cite} (2003). Notes on fungi. Oxford.",
                             '<meta name="author" content="{v}">']
# written on 2026-12-02 before any detector change of round 7, in styles none of sets 1-8 has: vCards,
# calendar invites, git blame, screenplays, recipes, podcasts, theses, dedications, boarding passes,
# police reports, chess PGN headers, probate notices, invoices, school reports, wiki infoboxes,
# conference programmes, SQL rows, man pages, RFC addresses and references, greeting cards, memorials,
# race results with nationality codes, forum replies, guest books, team sheets; names half from Korean
# (Revised Romanization), Hindi and Nepali (Hunterian) locales no other set draws from. Measured only,
# never looked at for misses.
NAME_HELD_OUT_9_TEMPLATES = ["BEGIN:VCARD\nFN:{v}\nORG:Northwind Ltd.\nEND:VCARD",
                             "ORGANIZER;CN={v}:mailto:host@example.org",
                             "a41c9e2 ({v} 2023-04-11 14:02:11 +0200 17)     return cache[key]",
                             "{up}\n(quietly)\nYou locked the door, didn't you?",
                             "Recipe by {v} | Serves 4 | 40 minutes",
                             "Episode 42: a long conversation with {v} about sourdough.",
                             "Thesis supervisor: {v}", "For {v}, who taught me to read.",
                             "Passenger: {up}   Seat 14C   Gate B22",
                             "The suspect, identified as {v}, was released on bail.",
                             '[Event "Club championship"]\n[White "{lf}"]\n[Result "1/2-1/2"]',
                             "IN THE MATTER OF THE ESTATE OF {up}, DECEASED", "Bill to: {v}\nDue: 30 days",
                             "Pupil: {v}    Class: 4B    Attendance: 96%",
                             "| name = {v}\n| birth_date = 1961\n| occupation = geologist",
                             "10:30  Keynote: {v} (University of Ghent)",
                             "INSERT INTO customers (name, city) VALUES ('{v}', 'Leeds');",
                             ".SH AUTHOR\nWritten by {v}.", "Authors' Addresses\n\n   {v}\n   Example Corp",
                             '[RFC9999]  {cite}, "Sparse hash tables", RFC 9999, May 2024.',
                             "Happy birthday, {v}! Love from all of us.", "In loving memory of {v}, 1931-2019",
                             "Men's 400 m final: gold {rev} (KOR), silver to the Kenyan.",
                             "{short} replied: works for me on 3.12.", "Lovely stay, thank you! {v} & family, Room 7",
                             "Goalkeeper: {v}; defenders: the usual four."]
def halves(items: list[str]) -> tuple[list[str], list[str]]:
    """(development half, held-out half) of `items`: ranked by a hash, alternately, so that both halves
    draw on every part of the list and adding an item moves few others."""
    ranked = sorted(items, key=lambda item: (zlib.crc32(item.encode()), item))
    return ranked[0::2], ranked[1::2]


NAME_TEMPLATE_SETS = {"1_written_before_cues": NAME_TEMPLATES, "2_held_out": NAME_HELDOUT_TEMPLATES,
                      "3_held_out_round_2": NAME_HELDOUT_2_TEMPLATES, "4_styles_faker": NAME_STYLE_TEMPLATES,
                      "5_final_faker_dev": NAME_FINAL_TEMPLATES, "6_dev": NAME_HELD_OUT_6_TEMPLATES,
                      "7_dev": NAME_HELD_OUT_7_TEMPLATES, "8_dev": NAME_HELD_OUT_8_TEMPLATES,
                      "9_dev": NAME_HELD_OUT_9_TEMPLATES, "10_dev": halves(NAME_TEMPLATES_10)[0],
                      "10_dev2": halves(NAME_TEMPLATES_10)[1], "11_held_out": NAME_TEMPLATES_11}
FAKER_SETS = ("4_styles_faker", "5_final_faker_dev", "6_dev", "7_dev", "8_dev", "9_dev", "10_dev",
              "10_dev2", "11_held_out")  # others: GIVEN x FAMILY
# set 7, products 7 and place_7 were held out for rounds 4 and 5 and scored many times: development sets
# since round 6, when set 8 took their place
# set 8, products 8 and place_8 likewise since round 7, when set 9 took their place
# set 9, products 9 and place_9 likewise since round 9 (scored three times), when set 10's held-out half took
# their place; set 10 (pii_sets_10.py, written by someone who had not read the detectors) is split in halves
# by a hash: a development half and a held-out half drawn from the same styles
# set 10's held-out half, products 10 and place_10 likewise since round 11 (scored three times; now 10_dev2,
# product_name_10_dev2, place_10_dev2), when set 11 (pii_sets_11.py, written likewise) took their place whole
HELD_OUT = ("11_held_out", "product_name_11", "place_11", "debian_held_out")
# each later set its own random stream, so that adding one leaves the values of the earlier ones as they were
STREAMS = {"6_dev": 6, "product_name_6": 6, "7_dev": 8, "product_name_7": 8, "place_7": 8, "place_dev": 9,
           "8_dev": 10, "product_name_8": 10, "place_8": 10, "9_dev": 11, "product_name_9": 11, "place_9": 11,
           "10_dev": 12, "product_name_10_dev": 12, "place_10_dev": 12, "10_dev2": 13, "product_name_10_dev2": 13,
           "place_10_dev2": 13, "11_held_out": 14, "product_name_11": 14, "place_11": 14}
DEBIAN = ("debian_dev", "debian_held_out")
# Latin-script Faker locales (romanized names for Japanese and Chinese); names of every origin
FAKER_LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_NG", "en_AU", "nl_NL", "nl_BE", "de_DE", "de_AT", "fr_FR",
                 "fr_CA", "pt_BR", "pt_PT", "it_IT", "es_ES", "es_MX", "es_AR", "ga_IE", "fi_FI", "hu_HU", "cs_CZ",
                 "pl_PL", "ro_RO", "tr_TR", "az_AZ", "vi_VN", "id_ID", "yo_NG", "ha_NG", "ig_NG", "zu_ZA", "tw_GH",
                 "sw", "uz_UZ", "sv_SE", "da_DK", "no_NO", "hr_HR", "sk_SK", "lt_LT", "et_EE", "fil_PH", "ja_JP",
                 "zh_CN"]
# Latin-script locales no set before 7 draws from (set 7 takes half its names from these)
FAKER_LOCALES_7 = ["en_KE", "en_NZ", "en_PK", "en_TH", "es_CL", "es_CO", "es_CA", "de_CH", "fr_BE", "fr_CH", "fr_DZ",
                   "is_IS", "lv_LV", "sl_SI"]
# locales no set before 8 draws from (set 8 takes half its names from these); the non-Latin ones romanised
FAKER_LOCALES_8 = ["ru_RU", "uk_UA", "bg_BG", "mk_MK", "el_GR", "hy_AM", "ka_GE", "zh_TW", "de_LI", "de_LU", "es"]
# locales no set before 9 draws from (set 9 takes half its names from these), romanised
FAKER_LOCALES_9 = ["ko_KR", "hi_IN", "ne_NP"]
FRESH_LOCALES = {"7_dev": FAKER_LOCALES_7, "8_dev": FAKER_LOCALES_8, "9_dev": FAKER_LOCALES_9,
                 "10_dev": FAKER_LOCALES_10, "10_dev2": FAKER_LOCALES_10, "11_held_out": FAKER_LOCALES_11}
PRODUCT_DECOYS = ["Visual Studio Code", "Google Chrome", "Microsoft Excel", "Apache Kafka", "Django REST Framework",
                  "Amazon Web Services", "Red Hat Enterprise Linux", "GitHub Actions", "Jupyter Notebook",
                  "Adobe Photoshop", "Mozilla Firefox", "Oracle Database", "Windows Server", "Apple Music"]
# fresh product names, chosen before any detector change: set 4 for development, set 5 held out
PRODUCTS_4 = ["Adobe Illustrator", "Microsoft Teams", "Autodesk Maya", "Unreal Engine", "Apache Cassandra",
              "HashiCorp Vault", "Sublime Text", "Ableton Live", "Final Cut Pro", "Wolfram Mathematica",
              "Lenovo ThinkPad", "Samsung Galaxy", "Google Maps", "Adobe Acrobat Reader", "Opera Mini",
              "Mozilla Thunderbird", "Apple Safari", "Microsoft Edge", "Oracle VirtualBox", "Atlassian Jira",
              "Atlassian Confluence", "Adobe Premiere Pro", "Tableau Desktop", "Amazon Kindle", "Nintendo Switch",
              "Sony Vegas", "Corel Painter", "Apache Tomcat", "Elastic Kibana", "Grafana Tempo",
              "Salesforce Einstein", "Kaspersky Total Security", "Dell Latitude", "Logitech Harmony",
              "Spotify Premium", "Tesla Cybertruck", "Ford Mustang", "Toyota Corolla", "Honda Civic"]
PRODUCTS_5 = ["Azure DevOps", "Apple Keynote", "Google Docs", "Microsoft Outlook", "IntelliJ IDEA", "Postman Flows",
              "Figma Jam", "Docker Desktop", "Apache Airflow", "Cisco Webex", "Zoom Workplace", "Canva Pro",
              "Adobe Lightroom", "Xcode Cloud", "Android Studio", "Godot Engine", "Blender Cycles", "Ubuntu Server",
              "Fedora Silverblue", "Debian Bookworm", "Kubernetes Dashboard", "Tor Browser", "Brave Search",
              "Samsung Bixby", "Amazon Echo", "Garmin Connect", "Philips Hue", "Porsche Taycan", "Nikon Coolpix",
              "Canon Pixma", "Epson EcoTank"]
# fresh products and templates for the held-out set 6, written before this round's detector changes
PRODUCTS_6 = ["Microsoft Word", "Google Sheets", "Adobe InDesign", "Apple Numbers", "Dropbox Paper",
              "Notion Calendar", "Slack Connect", "Zendesk Sell", "Shopify Plus", "Twilio Flex", "Heroku Postgres",
              "Vercel Analytics", "Netlify Functions", "Cloudflare Workers", "Okta Verify", "Duolingo Max",
              "Kindle Scribe", "Sonos Arc", "Fitbit Charge", "Peloton Tread", "Dyson Airwrap", "Subaru Outback",
              "Kia Sorento", "Fujifilm Instax", "Bose QuietComfort", "Wacom Cintiq", "Arduino Nano",
              "Jasper Reports", "Marshall Emberton", "Ford Ranger", "Mattermost Boards", "Grammarly Premium"]
# fresh products, companies and projects for the held-out set 7, each kind with its own templates,
# written before round 4's detector changes; place names (`place_7`) come from the system's time
# zone database at run time
PRODUCTS_7 = {
    "software": (["Affinity Photo", "Pixelmator Pro", "Logic Pro", "Camtasia Studio", "Evernote Teams", "Todoist Pro",
                  "Miro Whiteboard", "Trello Butler", "Airtable Interfaces", "Bitwarden Send", "Signal Desktop",
                  "Telegram Premium", "Nextcloud Talk", "Jellyfin Media Server", "Plex Pass", "DaVinci Resolve",
                  "Cubase Elements", "Lightworks Pro", "Ansible Tower", "Bamboo Server"],
                 ["The {v} trial ran out yesterday.", "Does {v} sync across devices?",
                  "I pasted the screenshot from {v} below.", "Switching to {v} halved our render times.",
                  "{v} asks for a restart every morning."]),
    "hardware": (["Raspberry Pi", "Steam Deck", "Oculus Quest", "Lenovo Yoga", "Asus Zenbook", "Acer Aspire",
                  "Razer Blade", "Garmin Fenix", "Kobo Clara", "Roku Ultra", "Nvidia Jetson", "Intel Xeon",
                  "Pixel Buds", "Surface Laptop", "Framework Laptop", "Sennheiser Momentum", "Jabra Elite",
                  "Polaroid Now", "Anker Soundcore", "Brother Scanncut"],
                 ["My {v} overheats when charging.", "Ordered a refurbished {v} for the lab.",
                  "The {v} arrived with a dead pixel.", "Battery life on the {v} is about nine hours.",
                  "{v} ships with 16 GB by default."]),
    "company": (["Rakuten Group", "Mitsubishi Electric", "Hyundai Mobis", "Tata Consultancy", "Siemens Healthineers",
                 "Roche Diagnostics", "Maersk Line", "Ericsson Research", "Bosch Rexroth", "Schneider Electric",
                 "Johnson Controls", "Goldman Sachs", "Morgan Stanley", "Wells Fargo", "Lockheed Martin",
                 "Baker Hughes", "Ernst Leitz", "Dassault Aviation", "Renault Trucks", "Heineken Brewery"],
                ["Shares of {v} rose 4 percent on Monday.", "{v} announced layoffs in its Munich office.",
                 "A spokesperson for {v} declined to comment.", "The contract went to {v} after the tender.",
                 "{v} reported record revenue."]),
    "project": (["Hyperledger Fabric", "Apache Beam", "Eclipse Theia", "Kubeflow Pipelines", "Apache Arrow",
                 "Mozilla Rhino", "Gnome Builder", "Wine Staging", "Arch Linux", "Linux Mint", "Manjaro Linux",
                 "Kali Linux", "Alpine Linux", "Rocky Linux", "Fedora Kinoite", "Zorin Grid", "Tails Project",
                 "Project Jupyter", "Open Compute", "Mastodon Social"],
                ["Contributions to {v} are reviewed weekly.", "The {v} maintainers merged the patch.",
                 "{v} graduated from incubation.", "We forked {v} to add single sign-on.",
                 "Join the {v} community call on Thursday."]),
}
PLACE_7_TEMPLATES = ["Flights to {v} were cancelled because of fog.", "The conference moves to {v} next year.",
                     "She grew up near {v}.", "Our warehouse in {v} is closed on Sundays.",
                     "Weather for {v}: light rain, 14 C."]
# place names for development (round 4), from Faker's lists of real towns (Germany, Italy, Poland, the
# Netherlands) and countries, in templates of their own; place_7 stays held out
PLACE_DEV_LOCALES = ("de_DE", "it_IT", "pl_PL", "nl_NL")
PLACE_DEV_TEMPLATES = ["The train to {v} leaves at nine.", "He moved to {v} in 2015.",
                       "Population of {v}: about 20,000.", "Hotels near {v} are booked out.",
                       "{v} is twinned with a town in Wales."]
# fresh products, companies and projects for the held-out set 8 (a few whose first word is a given name:
# "Ada Health", "Hugo Extended"), and towns of eleven countries no earlier list draws from (`place_8`),
# written on 2026-12-02 before round 6's detector changes
PRODUCTS_8 = {
    "software": (["Clip Studio Paint", "Paint Shop Pro", "Affinity Designer", "Capture One", "Balsamiq Wireframes",
                  "Obsidian Sync", "Joplin Cloud", "Proton Mail", "Vivaldi Mail", "Thunder Client", "Sequel Ace",
                  "Navicat Premium", "Zotero Connector", "Mendeley Desktop", "Scrivener Gold", "Anki Flashcards",
                  "Headspace Plus", "Strava Summit", "Komoot Premium", "Siri Shortcuts", "Alexa Guard"],
                 ["Anyone know if {v} exports to PDF?", "{v} froze during the demo.",
                  "Our students get {v} for free.", "I uninstalled {v} after the last update.",
                  "The {v} plugin broke the toolbar."]),
    "goods": (["Nissan Leaf", "Hyundai Ioniq", "Skoda Octavia", "Mazda Miata", "Jeep Wrangler", "Volkswagen Passat",
               "Renault Clio", "Peugeot Partner", "Vespa Primavera", "Ducati Monster", "Miele Triflex",
               "Nespresso Vertuo", "Instant Pot", "Vitamix Ascent", "Roomba Combo", "Xiaomi Redmi", "OnePlus Nord",
               "Huawei Mate", "Fairphone Gen", "Sony Alpha", "Panasonic Lumix", "GoPro Hero", "DJI Mavic"],
              ["The {v} needs a service every 15,000 km.", "We returned the {v} within the trial period.",
               "Spare parts for the {v} take weeks.", "My neighbour's {v} is louder than mine.",
               "{v} owners report the same rattle."]),
    "company": (["Deutsche Bahn", "Air Canada", "Banco Santander", "Credit Agricole", "Societe Generale",
                 "Rolls Royce", "General Mills", "Texas Instruments", "Western Digital", "Seagate Technology",
                 "Nokia Networks", "Hitachi Energy", "Accenture Song", "Capgemini Invent", "Sanofi Pasteur",
                 "Novo Nordisk", "Air Liquide", "Thales Alenia", "Airbus Helicopters", "Kongsberg Maritime",
                 "Vestas Wind", "Pirelli Tyres", "Lufthansa Cargo", "Ada Health", "Oscar Health", "Julia Computing"],
                ["{v} opened a plant near the border.", "Analysts downgraded {v} after the call.",
                 "The strike at {v} entered its third week.", "{v} is hiring graduates for its Lyon site.",
                 "Regulators fined {v} for late disclosures."]),
    "project": (["Apache Flink", "Apache Superset", "Eclipse Jetty", "Spring Boot", "Hugo Extended", "Sphinx Gallery",
                 "Celery Beat", "Flutter Web", "Ionic Framework", "Electron Forge", "Astro Starlight", "Nuxt Content",
                 "Deno Deploy", "Tauri Apps", "Bevy Engine", "Neovim Nightly", "Emacs Prelude", "Home Assistant",
                 "Syncthing Tray", "Jenkins Pipeline"],
                ["{v} dropped support for Python 3.8.", "The {v} docs explain the migration.",
                 "A regression in {v} broke our CI.", "We pinned {v} to the previous minor release.",
                 "{v} has a new maintainer team."]),
}
PLACE_8_LOCALES = ("pt_PT", "cs_CZ", "sk_SK", "ro_RO", "de_AT", "hr_HR", "sl_SI", "id_ID", "en_IN", "da_DK", "nl_BE")
PLACE_8_TEMPLATES = ["Road works between {v} and the motorway until May.", "The choir from {v} won the final.",
                     "Rents in {v} rose by a third.", "Our courier depot near {v} reopens on Monday.",
                     "Born in {v}, she studied in Vienna."]
# fresh products, companies and projects for the held-out set 9 (some named after people or with a
# given name first: "Aston Martin", "Charles Schwab", "Lincoln Navigator"), and states, provinces,
# counties and towns of eleven more countries (`place_9`), written on 2026-12-02 before round 7's changes
PRODUCTS_9 = {
    "software": (["Foxit Reader", "Nitro Pro", "Hootsuite Enterprise", "Calendly Teams", "Loom Business",
                  "Descript Studio", "Bear Notes", "Fantastical Premium", "Spark Mail", "Tower Git", "Sourcetree",
                  "Beyond Compare", "Total Commander", "Lightroom Classic", "Audacity Portable", "Krita Studio",
                  "Kdenlive Nightly", "Rufus Portable", "Ventoy Plugins", "Warp Terminal"],
                 ["A colleague swears by {v} for this.", "Is there a student discount for {v}?",
                  "{v} keeps asking me to sign in again.", "After the update {v} lost my settings.",
                  "We rolled {v} out to the whole office."]),
    "goods": (["Toyota Hilux", "Suzuki Jimny", "Fiat Panda", "Opel Corsa", "Seat Ibiza", "Dacia Duster",
               "Citroen Berlingo", "Kawasaki Ninja", "Yamaha Tenere", "Kenwood Chef", "Breville Barista",
               "Smeg Kettle", "Garmin Edge", "Polar Vantage", "Suunto Race", "Leica Q", "Lincoln Navigator",
               "Mercedes Sprinter", "Alfa Romeo", "Aston Martin", "Ferrari Roma", "Chevrolet Tahoe"],
              ["The {v} failed its inspection on the brakes.", "A used {v} goes for about half the price.",
               "I drove the {v} through the mountains all week.", "Recall notice for the {v}: check the seat belts.",
               "The {v} comes in three colours."]),
    "company": (["Allianz Trade", "Zurich Insurance", "Nestle Purina", "Danone Waters", "Carlsberg Group",
                 "Bayer Crop", "Merck Serono", "Philips Lighting", "Alstom Transport", "Saab Dynamics",
                 "Daimler Truck", "Volvo Cars", "Kone Elevators", "Orange Business", "Telia Company",
                 "Deloitte Digital", "Charles Schwab", "Edward Jones", "Johnson Matthey", "Harley Davidson"],
                ["Profits at {v} fell for a second quarter.", "{v} will cut two hundred jobs in Ohio.",
                 "The board of {v} meets on Friday.", "Customers of {v} complained about the new fees.",
                 "{v} bought a start-up for an undisclosed sum."]),
    "project": (["Apache Kylin", "Apache Pulsar", "Apache Druid", "Eclipse Che", "Grafana Loki",
                 "Prometheus Operator", "Argo Workflows", "Tekton Pipelines", "Istio Ambient", "Envoy Gateway",
                 "Jaeger Tracing", "Quarkus Native", "Micronaut Data", "Ktor Server", "Laravel Nova",
                 "Symfony Flex", "Gatsby Cloud", "Phoenix LiveView", "Elixir Nerves", "Jekyll Themes"],
                ["Upgrading {v} needs a schema migration.", "The {v} issue tracker moved to a forum.",
                 "We contributed a fix to {v} last spring.", "{v} release candidates are out for testing.",
                 "Benchmarks for {v} are in the wiki."]),
}
# (Faker locale, list attribute of its address provider): real places, not generated ones
PLACE_9_LISTS = (("fr_DZ", "cities"), ("es_CL", "communes"), ("en_PH", "province_lgus"), ("en_GB", "counties"),
                 ("en_US", "states"), ("en_IN", "states"), ("id_ID", "states"), ("vi_VN", "provinces"),
                 ("es_AR", "provinces"), ("de", "cities"), ("en_CA", "provinces"))
PLACE_9_TEMPLATES = ["Snow closed the pass above {v} overnight.", "A new clinic opens in {v} this spring.",
                     "The ferry from {v} was delayed by two hours.", "Volunteers from {v} cleaned the beach.",
                     "Greetings from {v}, where it has not stopped raining."]
SET_7_DECOYS = ("place_dev", "product_name_7", "place_7", "product_name_8", "place_8", "product_name_9",
                "place_9", "product_name_10_dev", "place_10_dev", "product_name_10_dev2", "place_10_dev2",
                "product_name_11", "place_11")  # picked apart from DECOY_CLASSES
PLACE_NAME = re.compile(r"[A-Z][a-z]+(?: (?:[a-z]+ )?[A-Z][a-z]+)+")
# the same in any Latin letters ("Bakov nad Jizerou", "Alcácer do Sal", "Banská Bystrica")
LATIN_PLACE_NAME = re.compile(r"[A-ZÀ-Þ][a-zß-ÿ\u0100-\u017f]+(?: (?:[a-z]+ )?[A-ZÀ-Þ\u0100-\u017f][a-zß-ÿ\u0100-\u017f]+)+")


@lru_cache(maxsize=1)
def zone_places() -> list[str]:
    """Place names of two or more words from the time zone database ("Port Moresby", "Dar es Salaam")."""
    import zoneinfo

    cities = {zone.split("/")[-1].replace("_", " ") for zone in zoneinfo.available_timezones()}
    return sorted(city for city in cities if PLACE_NAME.fullmatch(city))


@lru_cache(maxsize=1)
def dev_places() -> list[list[str]]:
    """Town names of two or more capitalised words from Faker's address lists, one list per country,
    and such country names (a country's list first, then a name: Italy's 16,000 towns do not crowd out
    the rest)."""
    address = "faker.providers.address"
    lists = [faker_for(locale).provider(address).cities for locale in PLACE_DEV_LOCALES]
    lists.append(faker_for("en_US").provider(address).countries)
    return [sorted({name for name in names if PLACE_NAME.fullmatch(name)}) for names in lists]


@lru_cache(maxsize=1)
def places_8() -> list[list[str]]:
    """Town names of two or more words from Faker's lists for the PLACE_8_LOCALES, one list per country."""
    lists = [faker_for(locale).provider("faker.providers.address").cities for locale in PLACE_8_LOCALES]
    return [sorted({name for name in names if LATIN_PLACE_NAME.fullmatch(name)}) for names in lists]


@lru_cache(maxsize=None)
def listed_places(lists: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """Place names of two or more words from (Faker locale, address attribute) `lists`, one list per source."""
    named = [getattr(faker_for(locale).provider("faker.providers.address"), attr) for locale, attr in lists]
    named = [names.values() if isinstance(names, dict) else names for names in named]  # {code: name} in some
    return [sorted({name for name in names if LATIN_PLACE_NAME.fullmatch(name)}) for names in named]


IDENTIFIER_DECOYS = ["get_user_name", "UserName", "parse_full_name()", "self.first_name", "JohnDoeFactory",
                     "NameResolver", "person.last_name", "DEFAULT_AUTHOR", "set_display_name", "AuthorSerializer"]
DECOY_CLASSES = {  # class: (values, templates)
    "product_name": (PRODUCT_DECOYS, ["Install {v} first.", "It runs on {v}.", "We moved to {v} last year."]),
    "code_identifier": (IDENTIFIER_DECOYS, ["Call {v} to get it.", "The attribute {v} is optional.", "See {v}."]),
    "product_name_4": (PRODUCTS_4, ["Download {v} from the vendor site.", "{v} crashed again after the update.",
                                    "Our license for {v} expires in May.", "Open {v} and go to Settings.",
                                    "The {v} release notes mention a fix.", "We benchmarked {v} against two rivals."]),
    "product_name_5": (PRODUCTS_5, ["Is {v} supported on ARM?", "{v} now ships with a dark theme.",
                                    "I switched from {v} to something lighter.", "Export the file from {v} as CSV.",
                                    "Support for {v} ends next quarter."]),
    "product_name_6": (PRODUCTS_6, ["Our team pays for {v} per seat.", "Works with {v} out of the box.",
                                    "{v} keeps logging me out since Tuesday.", "Migrating from {v} took a weekend.",
                                    "Has anyone tried {v} over a VPN?", "The {v} integration is still in beta.",
                                    "- [x] replace {v} with the in-house one"]),
}


APT_LISTS = Path("/var/lib/apt/lists")
CAPITALISED_PAIR = re.compile(r"(?<![\w.])[A-Z][a-z]+ [A-Z][a-z]+(?![\w])")


@lru_cache(maxsize=1)
def debian_lines() -> dict[str, list[str]]:
    """Debian's package short descriptions with a capitalised pair of words ("Claws Mail plugin
    ..."): real text about software nobody wrote against the detectors, split in halves by a hash
    of the line (debian_dev, debian_held_out); empty without apt lists and the lz4 tool."""
    halves: dict[str, list[str]] = {name: [] for name in DEBIAN}
    for path in sorted(APT_LISTS.glob("*_Packages.lz4")):
        try:
            listing = subprocess.run(["lz4", "-dc", str(path)], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        lines = {line[13:].strip() for line in listing.splitlines() if line.startswith("Description: ")}
        for line in sorted(lines):
            if CAPITALISED_PAIR.search(line):
                halves[DEBIAN[zlib.crc32(line.encode()) % 2]].append(line)
    return halves


def products_half(half: int) -> dict[str, tuple[list[str], list[str]]]:
    """One half (0: development, 1: the second development half) of each kind's values and templates of
    PRODUCTS_10."""
    return {kind: (halves(values)[half], halves(templates)[half]) for kind, (values, templates) in PRODUCTS_10.items()}


@lru_cache(maxsize=None)
def places_10(half: int) -> list[list[str]]:
    """One half (0: development, 1: the second development half) of each of the PLACE_10_LISTS' names."""
    return [halves(names)[half] for names in listed_places(PLACE_10_LISTS)]


PRODUCT_KINDS = {"product_name_7": PRODUCTS_7, "product_name_8": PRODUCTS_8, "product_name_9": PRODUCTS_9,
                 "product_name_10_dev": products_half(0), "product_name_10_dev2": products_half(1),
                 "product_name_11": PRODUCTS_11}
COUNTRY_PLACES = {"place_dev": (dev_places, PLACE_DEV_TEMPLATES), "place_8": (places_8, PLACE_8_TEMPLATES),
                  "place_9": (partial(listed_places, PLACE_9_LISTS), PLACE_9_TEMPLATES),
                  "place_10_dev": (partial(places_10, 0), halves(PLACE_10_TEMPLATES)[0]),
                  "place_10_dev2": (partial(places_10, 1), halves(PLACE_10_TEMPLATES)[1]),
                  "place_11": (partial(listed_places, PLACE_11_LISTS), PLACE_11_TEMPLATES)}


def decoy_pick(rng: random.Random, decoy_class: str) -> tuple[str, str]:
    """(value, template) of one decoy: a listed value in one of its class's templates, or a Debian
    description line with its first capitalised pair as the value."""
    if decoy_class in DEBIAN:
        line = rng.choice(debian_lines()[decoy_class])
        match = CAPITALISED_PAIR.search(line)
        return match.group(), line[:match.start()] + "{v}" + line[match.end():]
    if decoy_class in PRODUCT_KINDS:
        products = PRODUCT_KINDS[decoy_class]
        values, templates = products[rng.choice(sorted(products))]
        return rng.choice(values), rng.choice(templates)
    if decoy_class in COUNTRY_PLACES:
        lists, templates = COUNTRY_PLACES[decoy_class]
        return rng.choice(rng.choice(lists())), rng.choice(templates)
    if decoy_class == "place_7":
        return rng.choice(zone_places()), rng.choice(PLACE_7_TEMPLATES)
    values, templates = DECOY_CLASSES[decoy_class]
    return rng.choice(values), rng.choice(templates)


def spec_iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(IBAN_LENGTHS))
    bban = "".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(IBAN_LENGTHS[country] - 4))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return "grouped", " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    return "compact", compact


NANP_STYLES = ["({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "{a} {e} {n}", "+1 {a} {e} {n}", "+1-{a}-{e}-{n}",
               "+1.{a}.{e}.{n}", "1-{a}-{e}-{n}", "1 ({a}) {e}-{n}", "+1 ({a}) {e}-{n}", "({a}){e}-{n}"]


def spec_nanp(rng: random.Random) -> tuple[str, str]:
    style = rng.randrange(len(NANP_STYLES))
    area = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"  # any NXX: assigned or not
    exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    return f"style{style}", NANP_STYLES[style].format(a=area, e=exchange, n=digits(rng, 4))


SECRET_LINES = {"aws_cue": ["secret key: {v}", "AWS secret {v}", "the secret access key is {v}"],
                "python": ['API_TOKEN = "{v}"', "client_secret = '{v}'"], "yaml": ["password: {v}", "api_key: {v}"],
                "json": ['"auth_token": "{v}"', '"clientSecret": "{v}"'], "env": ["export DB_PASSWORD={v}",
                                                                                "SECRET_KEY={v}"]}


def spec_secret(rng: random.Random) -> tuple[str, str, str]:
    subtype = rng.choice(sorted(SECRET_LINES))
    value = base64ish(rng, 40) if subtype == "aws_cue" else base64ish(rng, rng.randint(16, 40), "-_")
    return subtype, value, rng.choice(SECRET_LINES[subtype])


def spec_ip(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return "private", rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                                      f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                                      f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"])
    return "public", ipv4(rng)


@lru_cache(maxsize=None)
def faker_for(locale: str):
    try:
        from faker import Faker
    except ImportError:
        raise SystemExit("pii_bench.py --real needs Faker for person names: pip install 'instruct[bench]'") from None
    return Faker(locale)


def name_parts(locale: str) -> tuple[Callable[[], str], Callable[[], str]]:
    """Callables drawing a given and a family name of `locale` in Latin letters (Faker's romanised
    names where it has them, title-cased as they are printed; other scripts through `romanise`)."""
    fake = faker_for(locale)
    romanized = hasattr(fake, "first_romanized_name")
    given, family = (fake.first_romanized_name, fake.last_romanized_name) if romanized else (fake.first_name,
                                                                                             fake.last_name)
    spell = str.title if locale == "zh_TW" else partial(romanise, locale=locale)
    return (lambda: spell(given())), (lambda: spell(family()))


def faker_name(rng: random.Random, fresh: list[str] = ()) -> tuple[str, str]:
    """(given, family) of a person from one of Faker's locales (half of the time from `fresh`, if given),
    in the shapes people write: plain, a middle initial, an initial for the given name, a middle name, a
    double-barrelled family name."""
    while True:
        locale = rng.choice(fresh if fresh and rng.random() < 0.5 else FAKER_LOCALES)
        faker_for(locale).seed_instance(rng.randrange(2 ** 32))
        given_of, family_of = name_parts(locale)
        given, family, shape = given_of(), family_of(), rng.random()
        if shape < 0.12:
            given = f"{given} {given_of()[0]}."
        elif shape < 0.22:
            given = f"{given[0]}."
        elif shape < 0.30:
            given = f"{given} {given_of()}"
        elif shape < 0.38:
            family = f"{family}-{family_of()}"
        if latin(f"{given} {family}"):
            return given, family


def spec_name(rng: random.Random, template_set: str) -> tuple[str, str]:
    if template_set not in FAKER_SETS:
        return rng.choice(GIVEN), rng.choice(FAMILY)
    return faker_name(rng, fresh=FRESH_LOCALES.get(template_set, []))


def name_in_template(given: str, family: str, template: str) -> tuple[str, str, str]:
    """(the name written as the template's slot asks, the template with that slot as {v}, the
    form): {v} "Given Family", {rev} "FAMILY Given", {cite} "Family, G.", {up} "GIVEN FAMILY",
    {short} "Given F.", {lf} "Family, Given"."""
    forms = {"rev": f"{family.upper()} {given}", "cite": f"{family}, " + " ".join(f"{w[0]}." for w in given.split()),
             "up": f"{given} {family}".upper(), "short": f"{given} {family[0]}.", "lf": f"{family}, {given}"}
    form = next((f for f in forms if "{" + f + "}" in template), None)
    if form is None:
        return f"{given} {family}", template, "v"
    return forms[form], template.replace("{" + form + "}", "{v}"), form


REAL_GENERATORS = {"IBAN": spec_iban, "PHONE": spec_nanp, "IP_ADDRESS": spec_ip}


def real_world_set(docs: int, seed: int, names: bool) -> tuple[list[str], list[list[Label]]]:
    """Each carrier docstring gets one value of each type (NAME: one per template set) and one decoy
    of each class, as lines after its first paragraph."""
    rng, debian_rng = random.Random(seed), random.Random(seed + 7)
    streams = {offset: random.Random(seed + offset) for offset in set(STREAMS.values())}
    items = [(kind, "") for kind in ("IBAN", "PHONE", "SECRET", "IP_ADDRESS")]
    if names:
        debian = [d for d in DEBIAN if debian_lines()[d]]
        items += [("NAME", s) for s in NAME_TEMPLATE_SETS] + [(f"decoy:{d}", d) for d in [*DECOY_CLASSES, *debian,
                                                                                     *SET_7_DECOYS]]
    texts, labels = [], []
    for carrier in (doc for _, doc in stdlib_docstrings(limit=docs)):
        first, _, rest = carrier.partition("\n\n")
        pieces, doc_labels, position = [first + "\n\n"], [], len(first) + 2
        for kind, subtype in items:
            r, form = streams[STREAMS[subtype]] if subtype in STREAMS else rng, "v"
            if kind == "SECRET":
                subtype, value, template = spec_secret(rng)
            elif kind == "NAME":
                given, family = spec_name(r, subtype)
                value, template, form = name_in_template(given, family, r.choice(NAME_TEMPLATE_SETS[subtype]))
            elif kind.startswith("decoy:"):
                value, template = decoy_pick(debian_rng if subtype in DEBIAN else r, subtype)
            else:
                subtype, value = REAL_GENERATORS[kind](rng)
                template = rng.choice(TEMPLATES[kind])
            before, _, after = template.partition("{v}")
            pieces.append(before)
            position += len(before)
            doc_labels.append(Label(position, position + len(value), kind, subtype, form))
            pieces.append(value + after + "\n")
            position += len(value) + len(after) + 1
        pieces.append(rest)
        texts.append("".join(pieces))
        labels.append(doc_labels)
    return texts, labels


def real_main(args: argparse.Namespace) -> None:
    try:
        from instruct.pii.names import load_ner

        load_ner()
        names = True
    except Exception as error:  # noqa: BLE001 (the extra is optional; say why NAME is skipped)
        print(f"NAME skipped: {error}")
        names = False
    texts, labels = real_world_set(args.docs, args.seed, names)
    if names and args.judge_sweep:
        return judge_sweep(texts, labels, args.judge_sweep)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    types = ("IBAN", "PHONE", "SECRET", "IP_ADDRESS") + (("NAME",) if names else ())
    active = detectors("phonenumbers", [*DEFAULT_TYPES, *(["NAME"] if names else [])])
    spans, seconds = run_detectors(texts, active)
    result = score(spans, labels, types)
    print(f"real-world set: {len(texts)} stdlib docstrings, {megabytes:.2f} MB (NAME here without the LM judge; "
          "the NAME table below has both)\n")
    print("| type | subtype | n | recall |\n|---|---|---|---|")
    found, total = Counter(), Counter()
    for doc_spans, doc_labels in zip(spans, labels):
        for label in doc_labels:
            if not label.kind.startswith("decoy:"):
                key = (label.kind, label.subtype)
                total[key] += 1
                found[key] += any(s.type == label.kind and s.start <= label.start and s.end >= label.end
                                  for s in doc_spans)
    for key in sorted(total):
        print(f"| {key[0]} | {key[1]} | {total[key]} | {found[key] / total[key]:.3f} |")
    print("\n| type | n | recall | precision |\n|---|---|---|---|")
    for t, row in result["types"].items():
        print(f"| {t} | {row['n']} | {row['recall']:.3f} | {row['precision']:.3f} |")
    for d, (hit, n) in sorted(result["decoys"].items()):
        print(f"decoy {d}: {hit} of {n} altered")
    no_names = [d for d in active if d.type != "NAME"]
    _, regex_seconds = run_detectors(texts, no_names)
    print(f"\nspeed, one process (CPU time): {megabytes / seconds:.2f} MB/s per core with NAME, "
          f"{megabytes / regex_seconds:.1f} MB/s per core without (regex detectors only)")
    if names:
        name_candidates(texts, labels, megabytes, args.misses)


def own_line(text: str, label: Label) -> str:
    """The label's line: what --misses prints, so that no neighbouring (held-out) line shows."""
    end = text.find("\n", label.end)
    return text[text.rfind("\n", 0, label.start) + 1:end if end >= 0 else len(text)]


def name_candidates(texts: list[str], labels: list[list[Label]], megabytes: float, misses: list[str]) -> None:
    """NAME detectors side by side: each spaCy model alone, cue patterns alone, cues + each model
    (and the word lists, where installed), cues + both models, cues + sm + the LM judge (the `pii`
    step's default); then the speed of the last and of cues + sm on the carrier text alone."""
    from instruct.pii.name_judge import THRESHOLD
    from instruct.pii.names import ENSEMBLES, MODELS, NameDetector, load_ner

    class SpacyOnly(NameDetector):
        def find(self, text):
            return self.model_names(text)

    models = []
    for name_model in MODELS:
        try:
            load_ner(name_model)
            models.append(name_model)
        except Exception as error:  # noqa: BLE001 (a candidate that is not installed is reported, not fatal)
            print(f"NAME model {name_model} skipped: {error}")
    candidates = [(f"{MODELS[m][0]} alone (PERSON + name shape)", SpacyOnly(name_model=m)) for m in models]
    candidates += [("cue patterns only (no model)", NameDetector(model=False))]
    candidates += [(f"cues + {MODELS[m][0]} (name_model: {m})", NameDetector(name_model=m)) for m in models]
    candidates += [(f"cues + {' + '.join(MODELS[m][0] for m in both)} (name_model: {name})", NameDetector(name_model=name))
                   for name, both in ENSEMBLES.items() if set(both) <= set(models)]
    judged = ("cues + en_core_web_sm + LM judge (name_judge: lm, the step's default)", NameDetector(judge=THRESHOLD))
    candidates += [judged]
    decoy_classes = [*DECOY_CLASSES, *(d for d in DEBIAN if debian_lines()[d]), *SET_7_DECOYS]
    print("\n| NAME detector | recall: " + " / ".join(NAME_TEMPLATE_SETS) + " | precision | decoys altered: "
          + " / ".join(decoy_classes) + " | MB/s |\n|---|---|---|---|---|")
    for label, detector in candidates:
        spans, seconds = run_detectors(texts, [detector])
        found, total, missed, by_form = Counter(), Counter(), [], Counter()
        for text, doc_spans, doc_labels in zip(texts, spans, labels):
            for lab in doc_labels:
                if lab.kind == "NAME":
                    total[lab.subtype] += 1
                    hit = any(s.start <= lab.start and s.end >= lab.end for s in doc_spans)
                    found[lab.subtype] += hit
                    by_form[lab.subtype, lab.form, hit] += 1
                    if not hit and lab.subtype in misses:
                        missed.append(f"{lab.subtype}: {own_line(text, lab)!r}")
                elif lab.subtype in misses and any(s.start < lab.end and s.end > lab.start for s in doc_spans):
                    missed.append(f"{lab.subtype} altered: {own_line(text, lab)!r}")
        row = score(spans, labels, ("NAME",))
        decoys = " / ".join(f"{hit} of {n}" for hit, n in (row["decoys"].get(d, (0, 0)) for d in decoy_classes))
        recall = " / ".join(f"{found[k] / max(1, total[k]):.3f}" for k in NAME_TEMPLATE_SETS)
        print(f"| {label} | {recall} | {row['types']['NAME']['precision']:.3f} | {decoys} | "
              f"{megabytes / seconds:.3f} |")
        forms = [(subtype, form) for subtype, form, _ in sorted(by_form) if form != "v"]
        for subtype in dict.fromkeys(subtype for subtype, _ in forms):
            print(f"    {subtype} by name form: " + ", ".join(
                f"{form} {by_form[subtype, form, True]} of {by_form[subtype, form, True] + by_form[subtype, form, False]}"
                for form in ("v", "rev", "cite", "up", "short", "lf")
                if by_form[subtype, form, True] + by_form[subtype, form, False]))
        for context in missed:
            print(f"    missed {context}")
    prose = [doc for _, doc in stdlib_docstrings(limit=len(texts))]  # the carriers alone: text as it comes
    prose_mb = sum(len(doc.encode()) for doc in prose) / 1e6
    for label, detector in (c for c in candidates if c[1] in (NameDetector(), judged[1])):  # the default and the judge
        _, seconds = run_detectors(prose, [detector])
        print(f"{label} on the carrier docstrings alone ({prose_mb:.2f} MB, no inserted values): "
              f"{prose_mb / seconds:.3f} MB/s per core")


def judge_sweep(texts: list[str], labels: list[list[Label]], thresholds: list[float]) -> None:
    """The default detector at each judge threshold, on the development sets only (a held-out set is
    never read here): recall over the NAME sets, decoys altered by kind. Each (line, span) is scored by
    the LM once; the later thresholds reuse the scores."""
    from instruct.pii import names
    from instruct.pii.names import NameDetector

    scored: dict[tuple[str, str], float] = {}
    judge = names.person_scores

    def remembered(items: list[tuple[str, str]]) -> list[float]:
        new = [item for item in dict.fromkeys(items) if item not in scored]
        scored.update(zip(new, judge(new)))
        return [scored[item] for item in items]

    development = [[lab for lab in doc if lab.subtype not in HELD_OUT] for doc in labels]
    kinds = ("product", "place", "debian")
    print("\n| judge threshold | NAME recall, development sets | " + " | ".join(f"{k} decoys altered" for k in kinds)
          + " |\n|---|---|---|---|---|")
    names.person_scores = remembered  # what NameDetector.judged calls
    try:
        for threshold in thresholds:
            detector = NameDetector(judge=threshold)
            row = score([list(detector.find(text)) for text in texts], development, ("NAME",))
            altered = {kind: [0, 0] for kind in kinds}
            for decoy_class, (hit, n) in row["decoys"].items():
                for kind in (k for k in kinds if decoy_class.startswith(k)):
                    altered[kind][0] += hit
                    altered[kind][1] += n
            name = row["types"]["NAME"]
            print(f"| {threshold:+.2f} | {name['recall']:.4f} (of {name['n']}) | "
                  + " | ".join(f"{hit} of {n}" for hit, n in altered.values()) + " |", flush=True)
    finally:
        names.person_scores = judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true", help="real-world formats per subtype, and person names")
    parser.add_argument("--misses", metavar="SET", action="append", default=[],
                        help="--real: print the names each NAME detector missed in SET (or the decoys of class SET "
                             "it altered); "
                             "not for the held-out " + " / ".join(HELD_OUT))
    parser.add_argument("--judge-sweep", metavar="T1,T2,...", type=lambda v: [float(t) for t in v.split(",")],
                        help="--real: only the default NAME detector at each LM-judge threshold, on the "
                             "development sets")
    args = parser.parse_args()
    if set(args.misses) & set(HELD_OUT):
        parser.error(f"--misses {' '.join(args.misses)}: a held-out set is measured, never looked at for misses")
    if args.real:
        return real_main(args)
    texts, labels, clean = build_set(args.docs, args.seed)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    values = sum(1 for doc in labels for lab in doc if not lab.kind.startswith("decoy:"))
    print(f"labeled set: {len(texts)} stdlib docstrings, {megabytes:.2f} MB, {values} PII values, "
          f"{sum(len(d) for d in labels) - values} decoys\n")

    ours, seconds = run_detectors(texts, detectors("phonenumbers"))
    result = score(ours, labels, DEFAULT_TYPES)
    print(f"{'type':<12} {'n':>5} {'recall':>7} {'precision':>9} {'detections':>10}")
    for t, row in result["types"].items():
        print(f"{t:<12} {row['n']:>5} {row['recall']:>7.3f} {row['precision']:>9.3f} {row['detections']:>10}")
    print("(precision: share of detections touching a labeled value or decoy that have the value's type)")
    print(f"\n{'decoy class':<20} {'altered':>8} {'of':>5}")
    for d, (hit, n) in sorted(result["decoys"].items()):
        print(f"{d:<20} {hit:>8} {n:>5}")
    print(f"decoys altered: {result['decoy_share']:.2%}")
    clean_spans, clean_seconds = run_detectors(clean, detectors("phonenumbers"))
    clean_mb = sum(len(t.encode()) for t in clean) / 1e6
    found_in_carriers = [(s.type, text[max(0, s.start - 12):s.end + 2]) for text, spans in zip(clean, clean_spans)
                         for s in spans]
    print(f"\ndetections in the unmodified carrier text (real e-mails/IPs of the stdlib docs, or false "
          f"positives; not in precision above): {len(found_in_carriers)} "
          f"{dict(Counter(t for t, _ in found_in_carriers))}")
    for kind, context in found_in_carriers[::max(1, len(found_in_carriers) // 6)][:6]:
        print(f"  {kind:<11} {context!r}")

    print(f"\nspeed, one process (CPU time): {megabytes / seconds:.1f} MB/s on the labeled set "
          f"(~{values / megabytes:,.0f} values per MB), {clean_mb / clean_seconds:.1f} MB/s on clean text")

    print("\nphone validation, measured to choose (PHONE rows only; decoys = share of all decoys altered by PHONE):")
    print(f"{'method':<38} {'recall':>7} {'precision':>9} {'decoys':>7} {'MB/s':>7}")
    variants = [("candidates + phonenumbers (default)", ours, seconds),
                ("candidates + NANP/E.164 rules", *run_detectors(texts, detectors("pattern"))),
                ("phonenumbers.PhoneNumberMatcher", *matcher_spans(texts))]
    for name, spans, secs in variants:
        phone_only = [[s for s in doc if s.type == "PHONE"] for doc in spans]
        row = score(phone_only, labels, ("PHONE",))
        speed = megabytes / secs
        print(f"{name:<38} {row['types']['PHONE']['recall']:>7.3f} {row['types']['PHONE']['precision']:>9.3f} "
              f"{row['decoy_share']:>7.2%} {speed:>7.1f}")
    worst = min(row["recall"] for row in result["types"].values())
    print(f"\ntargets: recall >= 0.97 per type (worst {worst:.3f}), decoys altered <= 1% "
          f"({result['decoy_share']:.2%}), >= 5 MB/s per core ({megabytes / seconds:.1f})")


if __name__ == "__main__":
    main()
