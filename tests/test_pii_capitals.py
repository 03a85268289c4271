"""Names in lines of capitals (headings, certificates, memorials, bylines) are found wherever they
sit in the line; English words end them, and towns and headings in capitals are left alone."""
from __future__ import annotations

import pytest

pytest.importorskip("spacy", reason="the NAME type's model needs the `ner` extra")

from instruct.pii.name_forms import upper_case_names, upper_field_names  # noqa: E402
from instruct.pii.name_lexicon import available  # noqa: E402
from instruct.pii.step import PiiScrub  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="the word lists of the `ner` extra")


def found(text: str, strict: bool = True) -> list[str]:
    return [text[start:end] for start, end in upper_case_names(text, strict)]


@pytest.mark.parametrize("line,name", [
    ("IN LOVING MEMORY OF CHERYL OKONKWO-BAYLISS", "CHERYL OKONKWO-BAYLISS"),  # after English words
    ("MR. MARTIN KOVACSOVICS WILL SPEAK AT NOON.", "MARTIN KOVACSOVICS"),  # before them
    ("BY ANNA KOWALCZYK", "ANNA KOWALCZYK")])  # a whole byline, as before
def test_a_given_name_and_rare_words_in_capitals_are_a_name(line, name):
    assert found(line) == [name]


@pytest.mark.parametrize("line", ["GRACE PERIOD ENDS", "TABLE OF CONTENTS", "ANNA LEFT HER HOUSE",
                                  "ANNA K."])  # no given name first, a noun last, one name word, an initial last
def test_capitals_without_a_name_are_no_strict_name(line):
    assert found(line) == []


def test_loose_proposals_start_after_a_cue_and_stop_at_english_words():
    assert found("SIGNED: G. LOOS", strict=False) == ["G. LOOS"]  # an initial first: the judge reads it
    assert found("HAPPY BIRTHDAY DEJAN DESHANOVSKI", strict=False) == ["DEJAN DESHANOVSKI"]  # "dejan": rare, no noun
    assert found("DOWNLOAD THE USER GUIDE TODAY", strict=False) == []


@pytest.mark.parametrize("text,names", [
    ("WARD 3   AMARA OSEI BOATENG   DIET: SOFT", ["AMARA OSEI BOATENG"]),  # a column of its own
    ("PLEASE WELCOME\nHELEN STONE\nOUR NEW HEAD OF SALES", ["HELEN STONE"]),  # a line of its own, "Stone" English
    ("Patient: DA XUAN   Bed 4", ["DA XUAN"]),  # a particle first, after a label
    ("DE GROOTE", []),  # a particle first, no label: as often a village
    ("SPECIAL OFFER\nSEE ALSO", []),  # no given name, no rare word
    ("GRACE PERIOD ENDS ON THE FIFTH OF MAY", [])])  # more words than a name in a field has
def test_a_field_in_capitals_that_is_only_a_name_is_proposed(text, names):
    assert [text[start:end] for start, end in upper_field_names(text)] == names


@pytest.fixture(scope="module")
def scrubber():
    return PiiScrub(types=["NAME"])  # the default: cues + model + LM judge


@pytest.mark.parametrize("sentence,clean", [
    ("IN LOVING MEMORY OF CHERYL OKONKWO-BAYLISS\n1931 - 2019", "IN LOVING MEMORY OF <NAME>\n1931 - 2019"),
    ("THIS CERTIFIES THAT ANNA KOWALCZYK HAS COMPLETED THE COURSE",  # "that": a conjunction, no determiner
     "THIS CERTIFIES THAT <NAME> HAS COMPLETED THE COURSE"),
    ("The form certifies that Anna Kowalczyk passed.", "The form certifies that <NAME> passed."),
    ("WARD 3   AMARA OSEI BOATENG   DIET: SOFT", "WARD 3   <NAME>   DIET: SOFT"),  # "AMARA": the field widens it
    ("LOAN OFFICER  MARIA LUISA ROSSI", "LOAN OFFICER  <NAME>"),
    ("PLEASE WELCOME\nHELEN STONE\nOUR NEW HEAD OF SALES", "PLEASE WELCOME\n<NAME>\nOUR NEW HEAD OF SALES")])
def test_names_in_capitals_are_scrubbed(scrubber, sentence, clean):
    assert scrubber.scrub(sentence)[0] == clean


@pytest.mark.parametrize("sentence", ["DOWNLOAD VILLA SAN GIOVANNI TODAY",  # a town in capitals, part of it
                                      "WELCOME TO SANTO STEFANO DI SESSANIO",  # read as a name
                                      "TABLE OF CONTENTS\nGRACE PERIOD ENDS"])
def test_towns_and_headings_in_capitals_are_left_alone(scrubber, sentence):
    assert scrubber.scrub(sentence) == (sentence, {})
