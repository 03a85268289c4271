"""Every Self-Instruct / Evol-Instruct filter rule at its exact threshold, on recorded-style responses."""
from __future__ import annotations

import random

import pytest

from instruct.synth.client import ClientConfig, LLMClient, Response
from instruct.synth.filters import (
    BLACKLIST,
    EliminationRules,
    InstructionRules,
    answer_reason,
    evolution_reason,
    filter_instances,
    instruction_reason,
    judged_equal,
    normalize_instruction,
    parse_classification_instances,
    parse_generation_instances,
    split_instructions,
)
from instruct.synth.rouge import RougeIndex
from instruct.synth.self_instruct import SelfInstruct, SelfInstructConfig, SynthOutput

RULES = InstructionRules()


def words(n: int) -> str:
    return " ".join(["Describe"] + ["river"] * (n - 1))


# --- instructions -----------------------------------------------------------------------------------

def test_word_count_bounds_are_exactly_4_and_150():
    assert instruction_reason(words(3), RULES) == "too_short"
    assert instruction_reason(words(4), RULES) is None
    assert instruction_reason(words(150), RULES) is None
    assert instruction_reason(words(151), RULES) == "too_long"
    assert instruction_reason("", RULES) == "empty"


@pytest.mark.parametrize("word", BLACKLIST)
def test_every_blacklisted_word_drops_only_as_a_whole_word(word):
    assert instruction_reason(f"Please {word.upper()} the sales numbers for me", RULES) == "blacklisted_word"
    assert instruction_reason(f"Please describe the sales {word}xyz for me", RULES) is None


def test_write_a_program_punctuation_and_non_ascii_starts():
    assert instruction_reason("Write a program that sorts a list", RULES) == "write_a_program"
    assert instruction_reason("Write a poem that rhymes about lists", RULES) is None
    assert instruction_reason('"Explain the joke in this sentence"', RULES) == "starts_with_punctuation"
    assert instruction_reason("Élaborez une liste de trois fruits", RULES) == "starts_with_non_ascii"


def test_split_and_normalize_follow_the_original_post_processing():
    text = " tell me a   joke about cats.\n10. Give three uses of a brick\n11 . Translate this\n sentence please"
    items = [normalize_instruction(i) for i in split_instructions(text)]
    assert items == ["Tell me a joke about cats.", "Give three uses of a brick", "Translate this sentence please"]
    # str.capitalize lowers the rest, exactly as upstream does
    assert normalize_instruction("explain NASA missions") == "Explain nasa missions"


def _self_instruct(rules: InstructionRules = RULES) -> SelfInstruct:
    client = LLMClient(ClientConfig(base_url="http://127.0.0.1:9/v1", model="recorded"))
    return SelfInstruct(SelfInstructConfig(rules=rules), client)


def test_truncated_bootstrap_response_is_dropped_whole_and_rouge_threshold_is_strict():
    method = _self_instruct()
    index = RougeIndex(0.7, ["one two three four five six seven eight nine ten"])
    machine: list = []
    out = SynthOutput()
    recorded = " Name five colours of the rainbow\n10. Explain why the sky is blue"
    method._take(0, [], Response(key="a", text=recorded, finish_reason="length"), index, machine, 10, out)
    assert machine == [] and out.counts["bootstrap_response"]["truncated_response"] == 1
    # F = 0.7 exactly is kept (the rule is "> 0.7"); F = 0.8 is rejected
    text = (" One two three four five six seven x y z\n10. One two three four five six seven eight y z"
            "\n11. Write a program to add numbers\n12. Draw a cat for me please")
    method._take(1, [], Response(key="b", text=text, finish_reason="stop"), index, machine, 10, out)
    assert [m["instruction"] for m in machine] == ["One two three four five six seven x y z"]
    assert machine[0]["nearest"]["rouge_l"] == pytest.approx(0.7)
    assert out.counts["instruction"] == {"kept": 1, "rouge_l_above_threshold": 1, "write_a_program": 1,
                                         "blacklisted_word": 1}


def test_instructions_beyond_num_are_counted_as_surplus():
    method = _self_instruct()
    machine: list = []
    out = SynthOutput()
    text = " Name five colours of the rainbow\n10. Explain why the sea tastes salty"
    method._take(0, [], Response(key="a", text=text, finish_reason="stop"), RougeIndex(0.7), machine, 1, out)
    assert len(machine) == 1 and out.counts["instruction"]["surplus_over_num"] == 1


# --- instances --------------------------------------------------------------------------------------

def test_parse_generation_examples_and_single_output():
    recorded = ("Example 1\nSentence: The cat sat.\nOutput: A cat was sitting.\nExample 2\nInput: Dogs bark.\n"
                "Output: Barking is what dogs do.\nInput: extra")
    assert parse_generation_instances(recorded) == [("Sentence: The cat sat.", "A cat was sitting."),
                                                    ("Dogs bark.", "Barking is what dogs do.")]
    assert parse_generation_instances("Output: 42") == [("", "42")]
    assert parse_generation_instances("just some text") == []


def test_parse_classification_output_first():
    recorded = "Class label: Positive\nReview: Loved it.\nClass label: Negative\nReview: Awful.\nClass label: Neutral"
    assert parse_classification_instances(recorded) == [("Review: Loved it.", "Positive"),
                                                        ("Review: Awful.", "Negative"), ("", "Neutral")]
    assert parse_classification_instances("Positive") == []


def test_each_instance_rule():
    rng = random.Random(0)
    instances = [("a", "a"), ("b", ""), ("c:", "x"), ("d", "y:"), ("e", "ok"), ("e", "ok"), ("", "fine")]
    decision = filter_instances(instances, "stop", 5, rng)
    assert decision.kept == [("e", "ok"), ("", "fine")]
    assert decision.dropped == {"input_equals_output": 1, "empty_output": 1, "trailing_colon": 2,
                                "duplicate_instance": 1}


def test_truncated_last_instance_conflicts_and_max_five():
    rng = random.Random(0)
    assert filter_instances([("a", "1"), ("b", "2")], "length", 5, rng).kept == [("a", "1")]
    conflicting = filter_instances([("a", "1"), ("a", "2"), ("b", "3")], "stop", 5, rng)
    assert conflicting.kept == [] and conflicting.dropped == {"conflicting_outputs": 3}
    # empty inputs never conflict (classification tasks without input, free-form generation)
    assert len(filter_instances([("", "1"), ("", "2")], "stop", 5, rng).kept) == 2
    many = [(f"in{i}", f"out{i}") for i in range(7)]
    capped = filter_instances(many, "stop", 5, rng)
    assert len(capped.kept) == 5 and set(capped.kept) <= set(many) and capped.dropped == {"over_max_instances": 2}
    assert filter_instances([], "stop", 5, rng).dropped == {"no_instances_parsed": 1}


# --- Evol-Instruct elimination ----------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["#The Given Prompt#", "#Rewritten Prompt#", "given prompt", "Rewritten prompt",
                                    "#Created Prompt#", "created prompt"])
def test_copied_scaffolding_is_eliminated(marker):
    rules = EliminationRules()
    assert evolution_reason("List fruits", f"{marker}: List five tropical fruits", rules) == "copied_prompt_scaffolding"


def test_no_information_gain_empty_and_judgement():
    rules = EliminationRules()
    assert evolution_reason("List fruits", "  List fruits ", rules) == "no_information_gain"
    assert evolution_reason("List fruits", "   ", rules) == "empty_evolution"
    assert evolution_reason("List fruits", "List five tropical fruits by sweetness", rules) is None
    assert judged_equal("Equal") and judged_equal(" equal.")
    assert not judged_equal("Not Equal") and not judged_equal("They differ")


def test_refusal_threshold_is_fewer_than_80_words():
    rules = EliminationRules()
    short = "Sorry, " + " ".join(["word"] * 78)  # 79 words
    assert answer_reason(short, "stop", rules) == "refusal"
    assert answer_reason(short + " more", "stop", rules) is None  # 80 words: a long answer that apologises
    assert answer_reason("Here is the plan: walk, rest, eat.", "stop", rules) is None


def test_only_punctuation_or_stop_words_and_truncation():
    rules = EliminationRules()
    assert answer_reason("... it is, and the! ", "stop", rules) == "only_punctuation_or_stop_words"
    assert answer_reason("?!", "stop", rules) == "only_punctuation_or_stop_words"
    assert answer_reason("", "stop", rules) == "empty_answer"
    assert answer_reason("Bananas are yellow", "length", rules) == "truncated_answer"
    assert answer_reason("Bananas are yellow", "length", EliminationRules(drop_truncated_answers=False)) is None


@pytest.mark.parametrize("reply, score", [
    ("Reasoning first.\nScore: 4", 4.0), ("**Rating:** 3", 3.0), ("Score: 3\nOn reflection, Score: 5", 5.0),
    ("The score is 5. The answer is 5.", 5.0),  # SmolLM2-135M's own words on the curation prompt
    ("I give it a rating of 2 because it is vague.", 2.0), ("4", 4.0), ("4/5", 4.0),
    ("score: 12", None), ("The scores are high.", None), ("A fine answer.", None)])
def test_parse_score_reads_labels_and_the_prose_small_models_write(reply, score):
    from instruct.synth.judges import parse_score

    assert parse_score(reply) == score
