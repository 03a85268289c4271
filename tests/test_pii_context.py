"""What sits next to a name decides for it: a version number is a product's line, a race time, a price,
a date or a measure is not; a sentence's "A" is an article; a register's "Family, Given I." keeps its
family name even where English knows the word."""
from __future__ import annotations

import pytest

from instruct.pii.name_context import product_context, sentence_article
from instruct.pii.names import NameDetector


def context(line: str, words: str) -> bool:
    start = line.index(words)
    return product_context(line, start, start + len(words))


@pytest.mark.parametrize("line", ["Rebecca Stone 6:58.2", "Paid to Rebecca Stone £12.50", "Rebecca Stone 12.03.2024",
                                  "WT 4.2 KG Rebecca Stone", "Rebecca Stone ran 10.2s", "Rebecca Stone, 37.5%"])
def test_a_time_a_price_a_date_or_a_measure_is_no_version_number(line):
    assert not context(line, "Rebecca Stone")


@pytest.mark.parametrize("line", ["Lada Niva 2.1 crashes on start", "Lada Niva v3.10.4", "Lada Niva Ubuntu 22.04"])
def test_a_version_number_still_makes_a_product_line(line):
    assert context(line, "Lada Niva")


def test_a_leaderboards_time_no_longer_hides_the_name():
    line = "Rowing 2k leaderboard: 1st Rebecca S. 6:58.2"
    assert [line[s.start:s.end] for s in NameDetector().find(line)] == ["Rebecca S."]


@pytest.mark.parametrize("text,article", [("A Lada Niva was seen.", True), ("It rained. A Lada Niva", True),
                                          ("Signed: A Smith", False), ("A SMITH", False), ("An Nguyen said", False),
                                          ("Plan A Lada", False)])
def test_a_sentences_a_is_an_article_not_an_initial(text, article):
    assert sentence_article(text, text.index("A")) is article


def test_an_article_leaves_a_person_after_it():
    line = "A Maria Lopez called for you."
    assert [line[s.start:s.end] for s in NameDetector().find(line)] == ["Maria Lopez"]


@pytest.mark.parametrize("line,name", [("Dam, Sussie S., Liberal Democrat, 1,842 votes", "Dam, Sussie S."),
                                       ("Index of deaths, 1974: Terry, Andrea J., p. 12", "Terry, Andrea J.")])
def test_a_registers_family_name_may_be_an_english_word(line, name):
    assert name in [line[s.start:s.end] for s in NameDetector().find(line)]


@pytest.mark.parametrize("line", ["Meanwhile, Anna B. said no.",  # no field's end after the initial
                                  "Thanks, Rebecca S.",  # a cue before the given name: a greeting
                                  "Dam, Sussie, Liberal Democrat"])  # no initial: an English word is no family name
def test_without_a_registers_shape_the_english_word_stays_out(line):
    first = line.split(",")[0]
    assert not any(line[s.start:s.end].startswith(first) for s in NameDetector().find(line))
