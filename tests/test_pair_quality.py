"""Instruction-pair steps on real EXAMPLE and PREFERENCE rows (answers are stdlib docstrings)."""
from __future__ import annotations

import inspect
import json
import json.decoder
import textwrap

import pytest

from instruct.pipeline.registry import make_step
from instruct.schema import examples_table, preferences_table


def doc(obj) -> str:
    return inspect.getdoc(obj)


def example(instruction: str, answer: str, meta: dict | None = None, row_id: str = "x") -> dict:
    return {"id": row_id, "messages": [{"role": "user", "content": instruction},
                                       {"role": "assistant", "content": answer}], "source": "t", "meta": meta or {}}


def reasons(step: str, rows: list[dict], **params) -> list[str | None]:
    out = make_step(step, params).ensure_setup().apply(examples_table(rows))
    return out.reasons


GOOD = example("What does json.dumps do?", doc(json.dumps))
GOOD_SHORT = example("What does textwrap.dedent do?", doc(textwrap.dedent))


def test_empty_and_truncated_answers():
    body = doc(json.loads)
    cut = body[: body.index(" the ", 200) + 4]  # stops on "the": a dangling word
    rows = [GOOD, example("What does json.loads do?", "   "), example("What does json.loads do?", cut),
            example("What does json.loads do?", body, {"finish_reason": "length"}),
            example("Show an example.", "Here it is:\n```python\nimport json\njson.loads('[1, 2]')"),
            example("Capital of France?", "Paris")]
    assert reasons("pair_answer", rows) == [None, "empty_answer", "truncated_answer", "truncated_answer",
                                            "truncated_answer", None]
    assert reasons("pair_answer", rows[2:3], truncation=False) == [None]


def test_language_mismatch_needs_both_sides_confident():
    german = ("Diese Funktion wandelt ein Python-Objekt in eine Zeichenkette im JSON-Format um und gibt sie "
              "zurück. Die Schlüssel werden dabei nicht sortiert.")
    rows = [GOOD, example("What does json.dumps do?", german), example("json.dumps?", german)]
    assert reasons("pair_language", rows) == [None, "language_mismatch", None]  # "json.dumps?" is too short


def test_refusals_and_assistant_boilerplate():
    rows = [GOOD, example("Summarise the json module.", "As an AI language model, I cannot read modules. " + doc(json)),
            example("Tell me a secret.", "I'm sorry, but I can’t help with that."),
            example("Explain the sorry state of error handling.", "I am sorry to say the decoder raises "
                    "JSONDecodeError on invalid input: " + doc(json.decoder.JSONDecodeError))]
    assert reasons("pair_refusal", rows) == [None, "refusal", "refusal", None]
    assert reasons("pair_refusal", rows[3:], extra_phrases=["i am sorry to say"]) == ["refusal"]


def test_repeated_ngrams_on_both_sides_of_the_threshold():
    looping = " ".join([doc(textwrap.dedent).split(".")[0] + "."] * 6)
    rows = [GOOD, example("What does dedent do?", looping)]
    out = make_step("pair_repetition", {}).ensure_setup().apply(examples_table(rows))
    assert out.reasons == [None, "repeated_ngrams"]
    frac = json.loads(out.table.column("meta")[1].as_py())["pair_repetition"]["dup_5_gram_char_frac"]
    assert reasons("pair_repetition", rows[1:], max_dup_ngram_frac=frac) == [None]
    assert reasons("pair_repetition", rows[1:], max_dup_ngram_frac=frac - 0.01) == ["repeated_ngrams"]


def test_instruction_length_bounds():
    rows = [GOOD, example("Explain.", doc(json.dumps)), example(" ".join(["word"] * 50), doc(json.dumps))]
    assert reasons("pair_length", rows) == [None, "instruction_too_short", None]
    assert reasons("pair_length", rows, max_instruction_words=20) == [None, "instruction_too_short",
                                                                     "instruction_too_long"]
    assert reasons("pair_length", rows[:1], min_answer_words=500) == ["answer_too_short"]


def test_preference_rows_judge_the_chosen_answer():
    table = preferences_table([
        {"id": "p1", "prompt": [{"role": "user", "content": "What does json.dumps do?"}],
         "chosen": [{"role": "assistant", "content": doc(json.dumps)}],
         "rejected": [{"role": "assistant", "content": "As an AI language model, I cannot answer."}], "meta": {}},
        {"id": "p2", "prompt": [{"role": "user", "content": "What does json.dumps do?"}],
         "chosen": [{"role": "assistant", "content": "As an AI language model, I cannot answer."}],
         "rejected": [{"role": "assistant", "content": doc(json.dumps)}], "meta": {}},
    ])
    assert make_step("pair_refusal", {}).ensure_setup().apply(table).reasons == [None, "refusal"]


def test_rows_without_a_pair_are_dropped_and_named():
    rows = [{"id": "s", "messages": [{"role": "system", "content": "Be brief."}], "source": "t", "meta": {}}]
    assert reasons("pair_answer", rows) == ["no_pair"]
    with pytest.raises(ValueError, match="EXAMPLE"):
        from instruct.schema import documents_table

        make_step("pair_answer", {}).ensure_setup().apply(documents_table([{"id": "d", "text": "x"}]))
