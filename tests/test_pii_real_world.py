"""PII formats seen in real text: every IBAN country, NANP shapes, cloud secrets, person names (spaCy)."""
from __future__ import annotations

import random
import string

import pytest

from instruct.pii.detectors import IBAN_LENGTHS, iban_valid
from instruct.pii.step import PiiScrub


def make_iban(rng: random.Random, country: str) -> str:
    """A valid IBAN from the format's definition: alphanumeric BBAN, check digits by ISO 7064 mod 97-10."""
    bban = "".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(IBAN_LENGTHS[country] - 4))
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


@pytest.fixture(scope="module")
def scrubber():
    return PiiScrub()


@pytest.mark.parametrize("country", sorted(IBAN_LENGTHS))
def test_every_registry_country_compact_and_grouped(scrubber, country):
    rng = random.Random(country)
    iban = make_iban(rng, country)
    assert iban_valid(iban)
    grouped = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    for value in (iban, grouped):
        assert scrubber.scrub(f"Please wire it to {value} by Friday.") == ("Please wire it to <IBAN> by Friday.",
                                                                            {"IBAN": 1})
    broken = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]  # a wrong check digit: left alone
    assert scrubber.scrub(f"Reference {broken} attached.")[1] == {}


@pytest.mark.parametrize("value", ["415-555-2671", "415.555.2671", "(415) 555-2671", "+1 415 555 2671",
                                   "1-415-555-2671", "+1.415.555.2671", "415 555 2671", "555-867-5309"])
def test_nanp_shapes_including_unassigned_area_codes(scrubber, value):
    assert scrubber.scrub(f"Call me at {value} tonight.") == ("Call me at <PHONE> tonight.", {"PHONE": 1})


@pytest.mark.parametrize("value", ["123-456-7890", "415-055-2671"])  # area or exchange starting 0/1: not NANP
def test_non_nanp_digit_groups_are_left_alone(scrubber, value):
    assert scrubber.scrub(f"Part {value} ships today.")[1] == {}


def test_aws_secret_next_to_a_cue_word_and_not_elsewhere(scrubber):
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY1"
    assert len(secret) == 40
    assert scrubber.scrub(f"secret key: {secret}")[1] == {"SECRET": 1}
    assert scrubber.scrub(f'aws_secret_access_key = "{secret}"')[1] == {"SECRET": 1}
    assert scrubber.scrub(f"The test vector {secret} encodes the sample.")[1] == {}  # no cue: a 40-char word


def test_high_entropy_values_assigned_to_secret_names(scrubber):
    for line in ['API_TOKEN = "q8Zx2LmN4pR7vT1wK9sB"', "client_secret: 7fGh2Kq9Lm3Xz8Pw", "export DB_PASSWORD=Tr0ub4dor&3xQ"]:
        assert scrubber.scrub(line)[1] == {"SECRET": 1}, line
    for line in ["password = get_password_from_env()", "token: your-token-here", "api_key = settings.api_key"]:
        assert scrubber.scrub(line)[1] == {}, line


spacy = pytest.importorskip("spacy", reason="the NAME type needs the `ner` extra")

NAMES = [("My name is John Smith and I run the build.", "John Smith"),
         ("Please ask Dr. Aisha Patel about the invoice.", "Aisha Patel"),
         ("We met Wei Chen at the conference in Lisbon.", "Wei Chen"),
         ("Contact Maria Garcia-Lopez for access to the archive.", "Maria Garcia-Lopez"),
         ("The patch was reviewed by Olga Ivanova last week.", "Olga Ivanova")]
DECOYS = ["Django and Flask are web frameworks; Jinja renders their templates.",
          "Install Visual Studio Code and call numpy.linalg.solve on the matrix.",
          "The function get_user_name returns a string, and UserName is a class.",
          "Run git rebase on the main branch, then push to GitHub.",
          "Apple released Safari 17 alongside macOS Sonoma.",
          "It runs on Jupyter Notebook.", "We moved to Jupyter Notebook last year."]  # spaCy: PERSON


@pytest.fixture(scope="module")
def with_names():
    return PiiScrub(types=["EMAIL", "NAME"])


@pytest.mark.parametrize("sentence,name", NAMES)
def test_names_are_replaced_with_a_typed_placeholder(with_names, sentence, name):
    clean, counts = with_names.scrub(sentence)
    assert name not in clean and "<NAME>" in clean and counts == {"NAME": 1}


@pytest.mark.parametrize("sentence", DECOYS)
def test_product_names_and_identifiers_are_left_alone(with_names, sentence):
    assert with_names.scrub(sentence) == (sentence, {})


CUE_NAMES = [("Signed, Kwame Mensah", "Kwame Mensah"),
             ("Reviewed-by: Linh Nguyen <linh@example.org>", "Linh Nguyen"),
             ("Thanks to Siobhan Walsh for the report.", "Siobhan Walsh"),
             ("Hello, my name is Omar and I maintain this package.", "Omar"),
             ("Amara Okafor wrote the first version.", "Amara Okafor"),
             ("Ms. Lindqvist approved the budget.", "Lindqvist"),
             ("Dear Hannah Schneider, thank you for your order.", "Hannah Schneider")]


@pytest.mark.parametrize("sentence,name", CUE_NAMES)
def test_cue_marked_names_are_found_with_or_without_the_model(with_names, sentence, name):
    for scrubber in (with_names, PiiScrub(types=["NAME"], name_model="cues")):
        clean, counts = scrubber.scrub(sentence)
        assert name not in clean and counts["NAME"] == 1, (scrubber.config.name_model, clean)


@pytest.mark.parametrize("sentence", [*DECOYS, "I am Happy to help.", "Ask for the Release Notes first.",
                                      "Hi Team, the build is green.", "Dear Customer, your order shipped.",
                                      "Thanks to get_user_name the lookup is cached."])
def test_cues_alone_leave_products_identifiers_and_single_words(sentence):
    assert PiiScrub(types=["NAME"], name_model="cues").scrub(sentence) == (sentence, {})


def test_a_person_entity_ending_in_a_common_noun_is_a_product():
    from instruct.pii.names import common_words, looks_like_name

    assert {"notebook", "database", "server"} <= common_words()
    assert not looks_like_name("It was Jupyter Notebook.", 7, "Jupyter Notebook")
    assert looks_like_name("It was Hiroshi Tanaka.", 7, "Hiroshi Tanaka")
