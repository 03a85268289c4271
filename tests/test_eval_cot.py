"""`instruct eval --cot`: the self-consistency vote on hand-built samples, CoT prompts (zero-shot trigger, few-shot
demos, a CoT template's own pattern), and a real tiny model trained to reason its way to one answer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from instruct.evaluate.cot import ZERO_SHOT_TRIGGER, cot_prompt, majority_vote
from instruct.io.shards import write_table
from instruct.schema import examples_table

REPLY = "A sign. So the answer is Symbol."


@pytest.mark.parametrize(("answers", "vote"), [
    (["Letter", "symbol", "Symbol.", None, "letter", "SYMBOL"], "symbol"),  # 3 symbol vs 2 letter, None skipped
    (["Mark", "Number", "Number", "Mark"], "Mark"),  # a tie goes to the answer seen first
    ([None, None], None),
    (["  Letter ", None], "  Letter "),
])
def test_majority_vote(answers, vote):
    assert majority_vote(answers) == vote


def example(i: int, target: str, meta: dict | None = None) -> dict:
    return {"id": f"ex{i}", "source": "t", "meta": json.dumps(meta or {}),
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": f"Category of item {i}?"},
                         {"role": "assistant", "content": target}]}


def test_cot_prompts_zero_shot_few_shot_and_template_patterns():
    demo = [{"role": "user", "content": "Category of 7?"}, {"role": "assistant", "content": "A digit. So the answer is Number."}]
    messages, pattern, reference = cot_prompt(example(0, "Letter"), [demo])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == f"Category of item 0?\n{ZERO_SHOT_TRIGGER}" and reference == "Letter"
    templated = example(1, "It has strokes.\nANSWER=Letter", {"answer_pattern": r"ANSWER=(\w+)"})
    messages, pattern, reference = cot_prompt(templated, [])
    assert messages[-1]["content"] == "Category of item 1?" and (pattern, reference) == (r"ANSWER=(\w+)", "Letter")


def test_eval_cot_scores_the_extracted_answer_beside_direct_accuracy(tmp_path):
    from click.testing import CliRunner
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from instruct.cli import main
    from instruct.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         tie_word_embeddings=True))
    # teach it one rationale + answer (loss on the reply only) for prompts carrying the zero-shot trigger
    prompts = [cot_prompt(example(i, "x"), [])[0] for i in range(2)]
    starts = [len(tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=False))
              for p in prompts]
    batch = tokenizer([tokenizer.apply_chat_template(p + [{"role": "assistant", "content": REPLY}], tokenize=False)
                       for p in prompts], return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    for row, start in enumerate(starts):
        labels[row, :start] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(35):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    targets = ["Symbol", "Letter", "Symbol", "Number", "Symbol"]
    rows = [example(20 + i, t, {"answer_choices": ["Letter", "Number", "Symbol"]}) for i, t in enumerate(targets)]
    write_table(examples_table(rows), tmp_path / "data" / "shards" / "part-0000.arrow")
    result = CliRunner().invoke(main, ["eval", "--data", str(tmp_path / "data"), "--model", str(tmp_path / "model"),
                                       "--output", str(tmp_path / "out"), "--cot", "--samples", "3",
                                       "--temperature", "0.2", "--cot-max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    assert "cot_accuracy" in result.output and "sc_accuracy" in result.output and "accuracy" in result.output
    report = json.loads((tmp_path / "out" / "eval.json").read_text())["models"]["base"]
    assert report["cot_accuracy"]["mean"] == pytest.approx(0.6) and report["sc_accuracy"]["mean"] == pytest.approx(0.6)
    assert report["cot_accuracy"]["ci95_low"] <= 0.6 <= report["cot_accuracy"]["ci95_high"]
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["cot_answer"] for p in predictions] == ["Symbol"] * 5 and predictions[0]["cot_reply"] == REPLY
    assert [p["sc_answer"] for p in predictions] == ["Symbol"] * 5
    assert np.isfinite(report["accuracy"]["mean"])  # the direct (rank classification) score sits beside it
