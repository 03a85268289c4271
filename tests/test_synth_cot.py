"""`instruct synth --method cot` against `instruct serve` (fake engine with hand-built replies), through the real
openai client: rejection sampling keeps exactly the rationales that reach the label, rationalisation is counted
apart, and the answer patterns of the CoT templates find the answers they should."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instruct.io.shards import read_shards
from instruct.serve.process import server_process
from instruct.templates.answers import extract_answer, same_answer

NLI = [  # (tag, label) -> premise "tag ...": yes=0, maybe=1, no=2
    ("P0", 0), ("P1", 2), ("P2", 1), ("P3", 0), ("P4", 2), ("P5", -1)]

# first matching rule wins; replies[seed % 2] with the default seed 42 -> sample 0 gets replies[0]
RULES = [
    {"pattern": r"(?s)P2 .*Hint: the correct answer is maybe",
     "reply": "The premise never says whether the boys are related. So the answer is maybe."},
    {"pattern": r"(?s)P3 .*Hint:", "reply": "Thinking about it again, the two do not fit. So the answer is no."},
    {"pattern": r"(?s)P4 .*Hint:", "reply": "As the hint says, the shop closes at six. So the answer is no."},
    {"pattern": "P0 ", "replies": ["A park is outdoors and pigeons are birds. So the answer is yes.",
                                   "Pigeons are birds and a park is outside. So the answer is yes."]},
    {"pattern": "P1 ", "replies": ["Nothing is said about their family. So the answer is maybe.",
                                   "A shop that closes at six is not open all night. So the answer is no."]},
    {"pattern": "P2 ", "replies": ["They are on a beach together, so surely yes. So the answer is yes.",
                                   "Two boys playing must be strangers. So the answer is no."]},
    {"pattern": "P3 ", "replies": ["So the answer is yes.", "I am not sure about this one at all."]},
    {"pattern": "P4 ", "replies": ["Shops can be open. So the answer is yes.", "It depends. So the answer is maybe."]},
]


def test_rejection_sampling_keeps_exactly_the_matching_rationales_and_counts_rationalisation(tmp_path: Path):
    data = tmp_path / "nli.jsonl"
    data.write_text("".join(json.dumps({"id": tag, "premise": f"{tag} premise text.", "hypothesis": "A claim.",
                                        "label": label}) + "\n" for tag, label in NLI))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    with server_process("--engine", "fake", "--fake-replies", str(rules)) as url:
        result = subprocess.run(
            [sys.executable, "-m", "instruct", "synth", "--method", "cot", "--data", str(data), "--output",
             str(tmp_path / "out"), "--base-url", url, "cot.templates=[nli_cot]", "cot.names=[entailment_reasoning]",
             "cot.samples=2", "progress=false"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {json.loads(r["meta"])["input_id"]: r for r in read_shards(tmp_path / "out").to_pylist()}
    assert sorted(rows) == ["P0", "P1", "P2"]
    metas = {k: json.loads(r["meta"]) for k, r in rows.items()}
    assert (metas["P0"]["sample"], metas["P1"]["sample"]) == (0, 1)  # P1's first sample said maybe
    assert [m["rationalized"] for m in (metas["P0"], metas["P1"], metas["P2"])] == [False, False, True]
    hinted = rows["P2"]["messages"]
    assert [m["role"] for m in hinted] == ["user", "assistant"] and "Hint" not in hinted[0]["content"]
    assert hinted[1]["content"].endswith("So the answer is maybe.") and metas["P2"]["answer"] == "maybe"
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert counts["stages"]["input"] == {"kept": 5, "unlabeled": 1}
    assert counts["stages"]["rationale"] == {"kept": 2, "over_keep": 1, "wrong_answer": 5, "no_rationale": 1,
                                             "no_answer": 1}
    assert counts["stages"]["rationalization"] == {"kept": 1, "wrong_answer": 1, "mentions_hint": 1}
    assert counts["outcomes"]["items"] == {"solved": 2, "rationalized": 1, "unsolved": 2}
    assert counts["written"] == 3
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert sum(r["stage"] == "rationale" for r in rejected) == 8  # every rejected sample is kept for reading


def test_example_rows_get_the_instruction_and_unsolved_items_are_counted_without_rationalisation(tmp_path: Path):
    from instruct.serve.engines import FakeEngine, ReplyRule
    from instruct.serve.server import serve_in_thread
    from instruct.synth.run import load_synth_recipe, run_synth

    examples = tmp_path / "qa.jsonl"
    examples.write_text(json.dumps({"id": "q1", "messages": [{"role": "user", "content": "Q1: 2 + 2?"},
                                                             {"role": "assistant", "content": "4"}]}) + "\n"
                        + json.dumps({"id": "q2", "messages": [{"role": "user", "content": "Q2: 3 + 3?"},
                                                               {"role": "assistant", "content": "6"}]}) + "\n")
    engine = FakeEngine(replies=[ReplyRule(r"Q1: .*\n.*step by step", ["Two and two make four. So the answer is 4."]),
                                 ReplyRule("Q2: ", ["Three and three make seven. So the answer is 7."])])
    with serve_in_thread(engine) as server:
        recipe = load_synth_recipe({"method": "cot", "data": str(examples), "output": str(tmp_path / "out"),
                                    "progress": False, "client": {"base_url": server.base_url},
                                    "cot": {"rationalize": False}}, [])
        manifest = run_synth(recipe)
    assert manifest["counts"]["outcomes"]["items"] == {"solved": 1, "unsolved": 1}
    assert manifest["counts"]["stages"]["rationale"] == {"kept": 1, "wrong_answer": 1}
    assert "rationalization" not in manifest["counts"]["stages"]


@pytest.mark.parametrize(("name", "reply", "answer"), [
    ("nli_cot", "Birds are animals.\nSo the answer is: yes.", "yes"),
    ("multiple_choice_qa_cot", "A mirror reflects, so not B. So the answer is (C), the Sun.", "C"),
    ("coreference_cot", "So the answer is boot, no wait. The suitcase is large.\nSo the answer is suitcase.",
     "suitcase"),
    ("examples/unicode_category/templates_cot.yaml", "LETTER names a letter. So the answer is Letter", "Letter"),
])
def test_cot_template_patterns_take_the_last_answer(name: str, reply: str, answer: str):
    from instruct.templates import load_templates

    template = load_templates(name)[0]
    assert same_answer(extract_answer(reply, template.answer_pattern), answer)
    assert extract_answer("no closing line here", template.answer_pattern) is None
