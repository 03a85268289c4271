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


def test_the_cached_examples_score_as_the_whole_prompt_read_at_once():
    import torch

    from instruct.pii.name_judge import PROMPT, examples_prompt, load_judge

    tokenizer, decoder, rows, _ = load_judge()
    whole = []
    for line, span in PEOPLE + THINGS:
        ids = tokenizer(examples_prompt()).input_ids + tokenizer(PROMPT.format(line=line, span=span)).input_ids
        with torch.inference_mode():
            logps = (decoder(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float() @ rows.T).log_softmax(-1)
        whole.append(float(logps[0] - logps[1:].logsumexp(-1)))
    cached = person_scores(PEOPLE + THINGS)
    assert max(abs(a - b) for a, b in zip(whole, cached)) < 0.2, (whole, cached)  # bf16 rounding only


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


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The spans put to the real scorer, recorded."""
    spans: list[str] = []

    def recording(items):
        spans.extend(span for _, span in items)
        return person_scores(items)

    monkeypatch.setattr(names, "person_scores", recording)
    return spans


def test_a_cued_name_is_kept_without_asking_the_model(judged, asked):
    clean, counts = judged.scrub("Dear Lukas Brandvold,\nthe Logitech Brio you ordered has shipped.")
    assert clean.startswith("Dear <NAME>,") and counts == {"NAME": 1}
    assert "Lukas Brandvold" not in asked


def test_a_title_the_model_took_into_the_name_still_vouches_for_it(judged, asked):
    assert judged.scrub("Prof. Wiremu Tapsell\nDepartment of Physics")[0] == "Prof. <NAME>\nDepartment of Physics"
    assert asked == []  # spaCy's entity is "Prof. Wiremu Tapsell"; the cue sits where the name starts


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


@pytest.mark.parametrize("sentence,clean", [
    ("Panel: KAWECKA M. (Poland) and one observer.", "Panel: <NAME> (Poland) and one observer."),  # FAMILY I.
    ("Index\nFischer, K. .......... room 12", "Index\n<NAME> .......... room 12"),  # Family, I. in a directory
    ("While we were away, K. Fischer rang about the lease.",  # I. Family, a family name English knows
     "While we were away, <NAME> rang about the lease.")])
def test_the_judge_decides_the_loose_forms_and_initials(judged, sentence, clean):
    assert PiiScrub(types=["NAME"], name_judge="none").scrub(sentence) == (sentence, {})  # the rules alone miss it
    assert judged.scrub(sentence) == (clean, {"NAME": 1})


@pytest.mark.parametrize("sentence", [
    "IMPORTANT NOTICE TO USERS", "GNU GENERAL PUBLIC LICENSE", "SEE ALSO",  # capitals that are headings
    "IBAN VA04 EU8O JF3W AYQC", "Paris, France is lovely.",  # IBAN groups are no name words; the model's places
    "Jack Wells v. Northwind Ltd [2019]",  # a company's suffix makes no name of "Northwind"
    "Posted by the moderator on Tue Jan 09, 2024",  # calendar words alone are a date, though "Jan" is a name
    "Raised in Ponta Delgada, she later moved to Vienna."])  # a later "she" makes no person of a place
def test_loose_forms_leave_headings_codes_places_and_companies_alone(judged, sentence):
    clean, _ = judged.scrub(sentence)
    assert clean == sentence.replace("Jack Wells", "<NAME>")


def test_capitals_are_title_cased_for_the_judge(judged):
    assert judged.scrub("BY TOMASZ WIERZBICKI\nUpdated at noon")[0] == "BY <NAME>\nUpdated at noon"
    assert names.read_as_written("Panel: KAWECKA M. (Poland)", "KAWECKA M.") == ("Panel: Kawecka M. (Poland)", "Kawecka M.")
    assert names.read_as_written("Ask Ingrid Solvang.", "Ingrid Solvang") == ("Ask Ingrid Solvang.", "Ingrid Solvang")
