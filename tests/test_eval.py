"""`instruct eval`: metrics, rank classification, adapter == merged model, the CLI's files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from instruct.cli import main
from instruct.evaluate import EvalConfig, evaluate, evaluate_model
from instruct.evaluate.metrics import answer_rouge_l, bootstrap, exact_match, normalize_answer
from instruct.evaluate.scoring import choice_logprobs, rank_classify, sequence_logprobs
from instruct.io.examples import load_examples
from instruct.io.shards import write_table
from instruct.schema import examples_table

CHOICES = ["Letter", "Number", "Symbol"]


def test_exact_match_uses_squad_normalisation():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("the answer is Paris.", "Answer is paris") == 1.0
    assert exact_match("Paris", "London") == 0.0


def test_rouge_l_matches_hand_computed_lcs():
    # LCS of "a b c d e" and "a c e f" is "a c e": P = 3/5, R = 3/4, F = 2PR/(P+R) = 2/3
    assert answer_rouge_l("a1 b1 c1 d1 e1", "a1 c1 e1 f1") == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert answer_rouge_l("x", "y") == 0.0
    assert answer_rouge_l("same words", "same words") == 1.0


def test_bootstrap_interval_contains_mean_and_narrows_with_n():
    small = bootstrap(np.array([1, 0] * 10))
    large = bootstrap(np.array([1, 0] * 1000))
    assert small.mean == large.mean == 0.5
    assert small.low < 0.5 < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from instruct.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model())


def tiny_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(config).eval()


def conversation(name: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Category of {name}? Options: {', '.join(CHOICES)}."},
            {"role": "assistant", "content": answer}]


def test_shared_prompt_scoring_equals_scoring_each_sequence(tokenizer):
    model = tiny_model(len(tokenizer))
    prompts = [tokenizer("a short prompt").input_ids, tokenizer("a much longer prompt with more tokens in it").input_ids]
    choices = [[tokenizer(" yes").input_ids, tokenizer(" no way").input_ids],
               [tokenizer(" one").input_ids, tokenizer(" two three four").input_ids, tokenizer(" x").input_ids]]
    shared = choice_logprobs(model, prompts, choices, batch_size=2)
    reference = sequence_logprobs(model, [(p, c) for p, cs in zip(prompts, choices) for c in cs])
    assert np.allclose(np.concatenate(shared), reference, atol=1e-4)


def test_rank_classification_picks_the_choice_the_model_was_trained_to_prefer(tokenizer):
    model = tiny_model(len(tokenizer)).train()
    texts = [tokenizer.apply_chat_template(conversation(name, "Symbol"), tokenize=False) for name in "ABCD"]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(**batch, labels=batch.input_ids.masked_fill(batch.attention_mask == 0, -100)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    scores = rank_classify(model, tokenizer, [(conversation(name, "")[:1], CHOICES) for name in ("E", "F", "G")])
    assert [CHOICES[int(np.argmax(s))] for s in scores] == ["Symbol"] * 3
    assert all(s[2] - max(s[0], s[1]) > 1.0 for s in scores)  # a clear margin, not a tie broken by luck


def write_examples(path, answers: list[str]) -> None:
    rows = [{"id": f"ex{i}", "messages": conversation(f"item {i}", answer), "source": "test",
             "meta": {"answer_choices": CHOICES}} for i, answer in enumerate(answers)]
    write_table(examples_table(rows), path / "shards" / "part-0000.arrow")


def test_adapter_eval_equals_merged_model_eval(tokenizer, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = tiny_model(len(tokenizer))
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    write_examples(tmp_path / "data", ["Letter", "Number", "Symbol", "Letter"])
    examples = load_examples(tmp_path / "data")
    config = EvalConfig(data=str(tmp_path / "data"), output=str(tmp_path / "out"))
    adapted = PeftModel.from_pretrained(tiny_model(len(tokenizer)), tmp_path / "adapter").eval()
    merged = PeftModel.from_pretrained(tiny_model(len(tokenizer)), tmp_path / "adapter").merge_and_unload().eval()
    with_adapter = evaluate_model(adapted, tokenizer, examples, config).predictions
    with_merged = evaluate_model(merged, tokenizer, examples, config).predictions
    assert np.allclose([p["scores"] for p in with_adapter], [p["scores"] for p in with_merged], atol=1e-4)
    plain = evaluate_model(tiny_model(len(tokenizer)), tokenizer, examples, config).predictions
    assert not np.allclose([p["scores"] for p in with_adapter], [p["scores"] for p in plain], atol=1e-4)


def test_cli_writes_metrics_and_predictions_for_base_and_adapter(tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    model_dir = tmp_path / "model"
    tiny_model(len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    get_peft_model(tiny_model(len(tokenizer)), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
                   ).save_pretrained(tmp_path / "adapter")
    write_examples(tmp_path / "data", ["Letter", "Number", "Symbol"])
    result = CliRunner().invoke(main, ["eval", "--data", str(tmp_path / "data"), "--model", str(model_dir),
                                       "--adapter", str(tmp_path / "adapter"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "delta" in result.output
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert set(report["models"]) == {"base", "adapter"} and report["examples"] == 3
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["ex0", "ex1", "ex2"]
    assert all(p["prediction"] in CHOICES and p["target"] in CHOICES for p in predictions)
    accuracy = np.mean([p["prediction"] == p["target"] for p in predictions])
    assert report["models"]["adapter"]["accuracy"]["mean"] == pytest.approx(accuracy)


def test_generation_tasks_get_exact_match_and_rouge(tokenizer, tmp_path):
    model_dir = tmp_path / "model"
    tiny_model(len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    rows = [{"id": "g0", "messages": conversation("free", "some answer"), "source": "t", "meta": {}}]
    write_table(examples_table(rows), tmp_path / "data" / "part.arrow")
    report = evaluate(EvalConfig(data=str(tmp_path / "data"), output=str(tmp_path / "out"), model=str(model_dir),
                                 max_new_tokens=4))
    assert set(report["models"]["base"]) == {"exact_match", "rouge_l"}
    prediction = json.loads((tmp_path / "out" / "predictions.jsonl").read_text())
    assert prediction["id"] == "g0" and prediction["target"] == "some answer"
