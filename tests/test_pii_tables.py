"""Names in delimited tables are found through their column's header, and the record formats that
name a person by their place (a chess game's players, iCalendar's CN=, `git blame`, BibTeX's author,
an estate's "deceased", a case's parties) cue a name."""
from __future__ import annotations

import pytest

from instruct.pii.name_context import cue_before, person_cue
from instruct.pii.name_tables import table_names
from instruct.pii.names import NameDetector


def cells(text: str) -> list[str]:
    return [text[start:end] for start, end in table_names(text)]


def test_a_person_column_holds_names_whatever_the_words():
    table = 'id,full_name,team\n7,Milan Parzer,payments\n8,"Okafor, Chidi",ops\n9,F. Mac an Abbadh,ops'
    assert cells(table) == ["Milan Parzer", "Okafor, Chidi", "F. Mac an Abbadh"]  # a quoted comma is no delimiter
    assert cells("author\tcommit\nAnna Kowalczyk\tabc123") == ["Anna Kowalczyk"]  # tabs too


@pytest.mark.parametrize("table", [
    "id,team,city\n7,Milan Parzer,Paris",  # no person's column
    "name;city\nn/a;Paris\njdoe;Lyon\nTBD;Nice",  # cells that are no name
    "name,city",  # a header and no rows
    "Dear Anna, the name, the city\nand the rest"])  # prose with commas: lines of unequal cells
def test_no_person_column_or_no_name_shaped_cell_finds_nothing(table):
    assert cells(table) == []


def test_table_names_need_no_model_and_an_organisation_stays_one():
    text = "package,version,maintainer\nnumpy,1.26,Debian Science Team\nscipy,1.11,Anna Kowalczyk\n"
    assert [text[s.start:s.end] for s in NameDetector(model=False).find(text)] == ["Anna Kowalczyk"]


@pytest.mark.parametrize("before", ['[White "', '[Black "', "ORGANIZER;CN=", "a41c9e2 (", "^3f0c1d2e lib/x.py (",
                                    "IN THE MATTER OF THE ESTATE OF ", "In loving memory of ", "  author = {",
                                    "STATE v. ", "Okafor vs. ", "100 1_ |a ", "700 1# $a ", "Gift of ",
                                    "Bequest of ", "Juror No. 7: ", "Donor: ", "Session chair: "])
def test_record_formats_that_hold_a_person_cue_the_name(before):
    assert cue_before(before, len(before))


@pytest.mark.parametrize("text,name", [("THE ESTATE OF CHIDI OKAFOR, DECEASED", "CHIDI OKAFOR"),
                                       ("Amara Osei v. Northwind Ltd [2019] EWHC 114", "Amara Osei")])
def test_deceased_or_a_case_after_a_name_cues_it(text, name):
    start = text.index(name)
    assert person_cue(text, start, start + len(name))


@pytest.mark.parametrize("before", ["the deadline (", "245 10 |a ", "a gift for ", "Juror notes: "])
def test_a_parenthesis_a_title_field_or_a_role_without_its_colon_is_no_cue(before):
    assert not cue_before(before, len(before))  # not `git blame`, not MARC's title field 245


def test_a_contracts_party_definition_after_a_name_cues_it():
    text = 'This Agreement is made between Na Zou (the "Licensee") and the Company.'
    assert person_cue(text, text.index("Na Zou"), text.index("Na Zou") + len("Na Zou"), pronoun=False)
    assert not person_cue(text, text.index("Company"), len(text) - 1, pronoun=False)


def test_a_marc_record_names_its_author_family_name_first():
    record = "100 1_ |a Iversen, Benedicte, |d 1968-\n245 10 |a The Salt Roads of the North"
    spans = [record[s.start:s.end] for s in NameDetector().find(record)]
    assert spans == ["Iversen, Benedicte"]  # the title field's capitals are no name
