"""Names in records: a field ends at a closing quote or bracket, a tab or two spaces (chess headers,
report cards, score sheets), initials may be any Latin capital, and a company suffix after a name
in capitals makes it a company's."""
from __future__ import annotations

import pytest

pytest.importorskip("spacy", reason="the NAME type's model needs the `ner` extra")

from instruct.pii.name_context import cue_before, name_length  # noqa: E402
from instruct.pii.name_forms import (  # noqa: E402
    citation_names,
    family_comma_given,
    upper_case_names,
    upper_family_names,
)
from instruct.pii.name_lexicon import available  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="the word lists of the `ner` extra")


def spans(form, text: str, **kwargs) -> list[str]:
    return [text[start:end] for start, end in form(text, **kwargs)]


def test_a_quoted_family_comma_given_value_ends_at_its_quote():
    assert spans(family_comma_given, '[Black "Wierzbicka, Halina"]') == ["Wierzbicka, Halina"]


def test_a_column_gap_ends_the_given_names_after_a_family_name_in_capitals():
    line = "Pupil: NOWACZYK Halina    Form: 4B    Term 2"
    assert spans(upper_family_names, line) == ["NOWACZYK Halina"]
    assert spans(family_comma_given, "Wierzbicka, Halina\tForm 4B") == ["Wierzbicka, Halina"]


def test_a_citation_ends_at_a_column_gap_or_a_quote_and_takes_any_latin_initial():
    assert spans(citation_names, "Mbatha, T. K.   caught   12") == ["Mbatha, T. K."]
    assert spans(citation_names, '[White "Mbatha, T."]') == ["Mbatha, T."]
    assert spans(citation_names, "Wierzbicka, Ł. (2019) On moss.") == ["Wierzbicka, Ł."]
    assert spans(citation_names, "Wierzbicka, T. K. 12 of them") == []  # no list, year or field end after it


@pytest.mark.parametrize("strict", [True, False])
def test_a_company_suffix_after_a_name_in_capitals_makes_a_company(strict):
    assert spans(upper_case_names, "INVOICE FROM JERZY KOWALCZYK GMBH, BERLIN", strict=strict) == []
    assert spans(upper_case_names, "INVOICE FROM JERZY KOWALCZYK, BERLIN", strict=strict) == ["JERZY KOWALCZYK"]
    assert name_length(["Jerzy", "Kowalczyk", "AG"]) == 0


@pytest.mark.parametrize("before,cue", [("PAYMENT RECEIVED FROM ", True), ("Pay to the order of ", True),
                                        ("Pupil: ", True), ("Payee: ", True), ("Payment: ", False),
                                        ("Received ", False), ("Pupil of ", False), ("ask for ", True),
                                        ("asking ", False)])
def test_a_form_label_for_a_person_or_a_payment_from_one_cues_a_name(before, cue):
    assert cue_before(before, len(before)) is cue


def test_an_initial_keeps_its_period_before_a_comma():
    # the span ends after "M.", so scrubbing leaves no stray period ("<NAME>., présidente")
    assert spans(upper_family_names, "Jury : KOWALCZYK M., présidente", strict=False) == ["KOWALCZYK M."]
    assert spans(upper_family_names, "Jury : KOWALCZYK Maria K., présidente") == ["KOWALCZYK Maria K."]
    assert spans(upper_family_names, "OKAFOR Chidi; TANAKA Kenji") == ["OKAFOR Chidi", "TANAKA Kenji"]
