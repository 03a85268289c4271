"""What word lists say about a name-shaped run: is its first word a given name, its last a common noun?

Data files that well-kept packages ship as plain text (no pickle, nothing executes), read once
per process, optional: without them `available()` is False and the NAME rules that use them are off.
- Given names: `nam_dict.txt` of gender-guesser (~37,000 first names of 55 countries, Jörg
  Michael's dictionary, with each name's frequency per country); not Faker's lists, which the
  bench draws its names from.
- How English writes a word: spaCy's `en_lexeme_prob` table (spacy-lookups-data; 1M cased word
  forms with log probabilities). "Cloud", "Studio", "Desktop" are written mostly in lower case
  ("cloud"); surnames and brands are not. That tells "Xcode Cloud" from "Irina Palu".
- How English uses a word: the same package's Brown clusters (`en_lexeme_cluster`): people's
  names, places and organisations, and other words fall in different subtrees ("Stalowa Wola").
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from instruct.pii.name_context import PARTICLES, common_words

LOWER_MARGIN = 1.0  # nats: the lower-case form this much likelier than the capitalised one makes a common noun
BRAND_MIN = -14.0  # log probability: "Samsung" -11.3, "Apache" -13.6; given names the list lacks are rarer
RARE_MAX = -15.5  # log probability under which a word is rare in English ("Olabode"; "Atlassian" -17.3)
UNSEEN = -20.0  # log probability of a form the table lacks (its rarest entries are near -20)
PERSON_PATH = (0b10110, 0b11111)  # (bits, mask) of the Brown cluster subtree of people's names
PROPER_PATH = (0b100110, 0b111111)  # ... of place and organisation names (the sibling subtree)
KNOWN_GIVEN_MIN = 3  # country frequency of a first name that outweighs the model's place label
COMMON_GIVEN_MIN = 5  # country frequency (1-13) of a first name that is a name even where English has the word


FREQUENCY_COLUMNS = slice(30, 85)  # nam_dict.txt: one hexadecimal digit per country, 1 (rare) to D (very common)


@lru_cache(maxsize=1)
def given_name_frequencies() -> dict[str, int]:
    """First names of gender-guesser's dictionary (its "+" joins spellings: "Jean+Pierre"), each with
    its highest frequency in any of the 55 countries ("Grace" 6, "Fedora" 3, "Kia" 2)."""
    path = _package_data("gender_guesser", "nam_dict.txt")
    if path is None:
        return {}
    names: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line[:1] not in "#=" and len(line.split()) > 1:
                spelling = line.split()[1]
                frequency = max((int(c, 16) for c in line[FREQUENCY_COLUMNS] if c in "0123456789ABCDEF"), default=0)
                for name in {spelling.replace("+", joiner) for joiner in ("", " ", "-")}:
                    names[name] = max(names.get(name, 0), frequency)
    return names


@lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    return frozenset(given_name_frequencies())


@lru_cache(maxsize=1)
def word_log_probs() -> dict[str, float]:
    """spaCy's English cased word probabilities, or {} without spacy-lookups-data."""
    return _lookups_table("en_lexeme_prob")


@lru_cache(maxsize=1)
def word_clusters() -> dict[str, int]:
    """spaCy's English Brown clusters of cased word forms, or {} without spacy-lookups-data."""
    return _lookups_table("en_lexeme_cluster")


def _lookups_table(name: str) -> dict:
    """A gzipped JSON table of spacy-lookups-data (read as data; the package is not imported)."""
    path = _package_data("spacy_lookups_data", f"{name}.json.gz")
    if path is None:
        return {}
    with gzip.open(path, "rt", encoding="utf-8") as table:
        return json.load(table)


def cluster_kind(word: str) -> str:
    """How English text uses the word, by its Brown cluster (a path read from the lowest bit):
    "person" ("Smith", "Irina", "Tanaka"), "proper" (places and organisations: "Berlin", "Apache",
    "Kia"), "common" (any other cluster: ordinary words, "Nowa") or "" (not in the table)."""
    cluster = word_clusters().get(word, 0)
    if not cluster:
        return ""
    if cluster & PERSON_PATH[1] == PERSON_PATH[0]:
        return "person"
    return "proper" if cluster & PROPER_PATH[1] == PROPER_PATH[0] else "common"


def used_as_no_name(words: list[str]) -> bool:
    """English uses the first word (initials and particles aside) as a place, an organisation or an
    ordinary word, it is no known given name ("Kia" is a rare one), and no word is used as people's
    names are: "Stalowa Wola", "Nowa Ruda", "Kia Sorento"; not "Ama Kwaakye", "Kenji Tanaka"."""
    rest = [w for w in words if not initial(w) and w.lower() not in PARTICLES]
    kinds = [cluster_kind(w) for w in rest]
    return bool(rest) and kinds[0] in ("proper", "common") and "person" not in kinds and not known_given_name(rest[0])


def _package_data(package: str, name: str) -> Path | None:
    """`package`/data/`name` of an installed package, found without importing (running) the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    return path if path.is_file() else None


def available() -> bool:
    return bool(given_names()) and bool(word_log_probs())


def initial(word: str) -> bool:
    return len(word) == 2 and word[0].isupper() and word[1] == "."


def given_name(word: str) -> bool:
    """A first name that English writes capitalised ("Irina", "Jennifer"; not "Will", "Grace"
    when "will", "grace" are the likelier forms), or an initial. However rare in the list: a
    frequency floor drops Asian and African names the list has from few countries ("Ananya")."""
    if initial(word):
        return True
    probs = word_log_probs()
    return word in given_names() and probs.get(word, UNSEEN) >= probs.get(word.lower(), UNSEEN)


def known_given_name(word: str) -> bool:
    """A given name more than rare somewhere ("Lucas" 4, "Bianka"; not "Kenya" 2), or a common one."""
    return (given_name(word) and given_name_frequencies().get(word, 0) >= KNOWN_GIVEN_MIN) or common_given_name(word)


def common_given_name(word: str) -> bool:
    """A first name common in some country, whatever English does with the word ("Grace", "Jure";
    not "Hope", "Fedora"), but no short or common English word ("In", "The", "Per" are names too)."""
    return (given_name_frequencies().get(word, 0) >= COMMON_GIVEN_MIN and len(word) >= 3
            and word.lower() not in common_words())


def common_noun(word: str) -> bool:
    """English writes the word mostly in lower case: "Cloud", "Workplace", "Dashboard"."""
    probs = word_log_probs()
    lower = probs.get(word.lower())
    return lower is not None and lower - probs.get(word, UNSEEN) > LOWER_MARGIN


def rare(word: str) -> bool:
    """English text almost never has the word, in either case ("Olabode", "Glavor")."""
    probs = word_log_probs()
    return max(probs.get(word, UNSEEN), probs.get(word.lower(), UNSEEN)) < RARE_MAX


def rare_words(words: list[str]) -> bool:
    """Words that English text almost never has, in either case: two or more ("Shohjahon Zayidov",
    "Modupe Olabode"), or one after initials ("T. Talts"), particles aside: names of other
    languages, not the brands and nouns English writes about."""
    rest = [w for w in words if not initial(w) and w.lower() not in PARTICLES]
    enough = len(rest) >= 2 or (len(rest) == 1 and len(words) >= 2 and initial(words[0]))
    return enough and all(rare(w) for w in rest)


def product_shaped(words: list[str]) -> bool:
    """A brand or a phrase, not a person ("Xcode Cloud", "Samsung Bixby", "Template Haskell"):
    the first word no given name or initial, and either word mostly written in lower case, or the
    first a word English writes more often than given names outside the list."""
    first = words[0]
    if initial(first) or first in given_names():
        return False
    return word_log_probs().get(first, UNSEEN) > BRAND_MIN or common_noun(first) or common_noun(words[-1])
