"""The LM judge for names (`name_judge: lm`): the embedded model reads each uncued name in its line
and vetoes products and places; with it on, names the rules' vetoes lost are proposed and kept."""
from __future__ import annotations

import pytest

from instruct.pii import names
from instruct.pii.name_judge import CONTEXT_CHARS, THRESHOLD, person_scores, window
from instruct.pii.step import PiiScrub

pytest.importorskip("spacy", reason="the NAME type's model needs the `ner` extra")

PEOPLE = [("The minutes were taken by the treasurer, Oluwaseun Adeyemi, on Monday.", "Oluwaseun Adeyemi"),
          ("After the match Tomasz Wierzbicki thanked the fans.", "Tomasz Wierzbicki"),
          ("Questions about the grant go to Ingrid Solvang.", "Ingrid Solvang")]
THINGS = [("Our team replaced the Logitech Brio with a cheaper webcam.", "Logitech Brio"),
          ("We drove from Bergen to Kristiansund Nord in one day.", "Kristiansund Nord"),
          ("The store sells the Breville Barista espresso machine.", "Breville Barista")]


def test_people_score_above_the_threshold_and_products_and_places_below():
    scores = person_scores(PEOPLE + THINGS)
    assert all(score >= THRESHOLD for score in scores[:len(PEOPLE)]), scores
    assert all(score < THRESHOLD for score in scores[len(PEOPLE):]), scores


def test_batched_scores_equal_one_at_a_time():
    items = PEOPLE + THINGS
    together = person_scores(items)
    alone = [person_scores([item])[0] for item in items]
    assert max(abs(a - b) for a, b in zip(together, alone)) < 0.2  # bf16 rounding differs with the batch shape


@pytest.fixture(scope="module")
def judged():
    return PiiScrub(types=["NAME"])  # the judge is the default


def test_the_judge_keeps_a_name_the_rules_miss_and_vetoes_a_product_the_model_calls_a_person(judged):
    # "Hope" is an English word, so without the judge the word-list rule does not propose the name
    name_line = "GENEVA, March 3 - Hope Balogun, the fund's treasurer, resigned on Tuesday."
    product_line = "Replace Dyson Airwrap with the in-house one."
    plain = PiiScrub(types=["NAME"], name_judge="none")
    assert plain.scrub(name_line) == (name_line, {})
    assert plain.scrub(product_line)[1] == {"NAME": 1}  # spaCy calls the product a person
    assert judged.scrub(name_line) == ("GENEVA, March 3 - <NAME>, the fund's treasurer, resigned on Tuesday.",
                                       {"NAME": 1})
    assert judged.scrub(product_line) == (product_line, {})


def test_a_cued_name_is_kept_without_asking_the_model(judged, monkeypatch):
    asked = []

    def recording(items):
        asked.extend(span for _, span in items)
        return person_scores(items)

    monkeypatch.setattr(names, "person_scores", recording)
    clean, counts = judged.scrub("Dear Lukas Brandvold,\nthe Logitech Brio you ordered has shipped.")
    assert clean.startswith("Dear <NAME>,") and counts == {"NAME": 1}
    assert "Lukas Brandvold" not in asked


def test_cues_alone_load_no_model(monkeypatch):
    def refuse():
        raise AssertionError("name_model: cues must not load the judge")

    monkeypatch.setattr("instruct.pii.step.load_judge", refuse)
    assert PiiScrub(types=["NAME"], name_model="cues").scrub("Dear Noah Costa,")[0] == "Dear <NAME>,"


def test_the_judge_reads_a_window_of_a_long_line_cut_at_spaces():
    cells = " | ".join(f"cell {index}" for index in range(200))
    line = f"{cells} | Ingrid Solvang | {cells}"
    start = line.index("Ingrid")
    piece = window(line, start, start + len("Ingrid Solvang"))
    assert "Ingrid Solvang" in piece and len(piece) <= 2 * CONTEXT_CHARS + len("Ingrid Solvang") + 2
    assert not piece.startswith(" ") and line.find(piece) >= 0
    assert window("Ask Ingrid Solvang.", 4, 18) == "Ask Ingrid Solvang."
