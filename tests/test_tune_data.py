"""Rendering, loss masks, truncation, caching and input formats of `instruct tune` (tokenizer only, fast)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from instruct.config import ConfigError
from instruct.io.readers.base import InputError
from instruct.schema import SchemaError, examples_table
from instruct.tune.data import IGNORE, load_examples, shift_and_fit, split_eval, tokenize_example, tokenize_table
from instruct.tune.templates import TEMPLATE_CHOICES, select_template

CONVERSATION = [
    {"role": "system", "content": "You answer in one sentence."},
    {"role": "user", "content": "What is a list comprehension?"},
    {"role": "assistant", "content": "A compact way to build a list from an iterable."},
    {"role": "user", "content": "And a generator expression?"},
    {"role": "assistant", "content": "The lazy version: it yields items one at a time."},
]


@pytest.fixture()
def tokenizer():
    from transformers import AutoTokenizer

    from instruct.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model())


def trained_runs(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    runs, current = [], []
    for token, label in zip(input_ids, labels):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize("template", ["tokenizer", "chatml", "alpaca"])
def test_only_assistant_replies_and_their_end_token_are_trained(tokenizer, template):
    name = select_template(tokenizer, template)
    input_ids, labels = tokenize_example(tokenizer, CONVERSATION)
    replies = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    end = "<|im_end|>" if name in ("tokenizer", "chatml") else tokenizer.eos_token
    runs = trained_runs(input_ids, labels)
    assert [tokenizer.decode(run) for run in runs] == [reply + end for reply in replies]
    for run in runs:  # the end-of-turn token itself is trained, as a single special token
        assert run[-1] in tokenizer.all_special_ids
    # the masked tokens are everything else, and rendering token by token reproduces the template's text
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert tokenizer.decode(input_ids) == rendered
    untrained = tokenizer.decode([t for t, l in zip(input_ids, labels) if l == IGNORE])
    assert "list comprehension" in untrained and "one sentence" in untrained and "compact way" not in untrained


def test_every_shipped_template_is_covered():
    assert set(TEMPLATE_CHOICES) == {"auto", "tokenizer", "chatml", "alpaca"}  # auto resolves to one of the others


def test_auto_template_picks_the_tokenizers_own(tokenizer):
    template = tokenizer.chat_template
    assert select_template(tokenizer, "auto") == "tokenizer" and tokenizer.chat_template == template
    tokenizer.chat_template = None
    assert select_template(tokenizer, "auto") == "chatml"  # SmolLM2 has the ChatML tokens


def test_targets_are_shifted_within_the_example(tokenizer):
    input_ids, labels = tokenize_example(tokenizer, CONVERSATION)
    ids, targets, reason, truncated = shift_and_fit(input_ids, labels, 4096, "drop")
    assert reason is None and not truncated
    trained = np.flatnonzero(targets != IGNORE)
    assert (targets[trained] == ids[trained + 1]).all()
    assert targets[-1] == IGNORE  # the last token predicts nothing: no leak into a packed neighbour
    assert (targets != IGNORE).sum() == sum(l != IGNORE for l in labels)


def test_truncation_never_cuts_an_answer(tokenizer):
    long_prompt = [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "Short answer."}]
    long_answer = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 400}]
    for messages, policy, expected in [(long_prompt, "drop", "too_long"), (long_answer, "truncate_prompt", "answer_too_long")]:
        assert shift_and_fit(*tokenize_example(tokenizer, messages), 64, policy)[2] == expected
    input_ids, labels = tokenize_example(tokenizer, long_prompt)
    ids, targets, reason, truncated = shift_and_fit(input_ids, labels, 64, "truncate_prompt")
    assert reason is None and truncated and len(ids) == 64
    assert (targets != IGNORE).sum() == sum(l != IGNORE for l in labels)  # every answer token kept

    table = examples_table([{"id": "a", "messages": long_prompt, "source": "t"},
                            {"id": "b", "messages": long_answer, "source": "t"}])
    result = tokenize_table(table, tokenizer, 64, "truncate_prompt", None)
    assert result.ids == ["a"] and result.truncated_prompts == 1 and dict(result.dropped) == {"answer_too_long": 1}
    assert tokenize_table(table, tokenizer, 64, "drop", None).dropped == {"too_long": 2}


def test_template_that_rewrites_earlier_turns_is_refused(tokenizer):
    # drops every assistant turn but the last, like some "thinking" templates do
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}"
                               "{{ m['role'] + ': ' + m['content'] + '<|im_end|>' }}{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(ConfigError, match="rewrites earlier turns"):
        tokenize_example(tokenizer, CONVERSATION)


def test_template_without_end_of_turn_token_is_refused(tokenizer):
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(SchemaError, match="never learn to stop"):
        tokenize_example(tokenizer, CONVERSATION[:3])


def test_tokenisation_is_cached_by_content(tokenizer, tmp_path, monkeypatch):
    table = examples_table([{"id": str(i), "messages": CONVERSATION[:3], "source": "t"} for i in range(3)])
    first = tokenize_table(table, tokenizer, 512, "drop", tmp_path)
    assert len(list(tmp_path.glob("*.arrow"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(type(tokenizer), "apply_chat_template", fail)
    second = tokenize_table(table, tokenizer, 512, "drop", tmp_path)
    assert [x.tolist() for x in second.input_ids] == [x.tolist() for x in first.input_ids]
    changed = examples_table([{"id": "0", "messages": CONVERSATION[:2] + [{"role": "assistant", "content": "x"}],
                               "source": "t"}])
    with pytest.raises(AssertionError, match="tokenised again"):  # new content is a cache miss
        tokenize_table(changed, tokenizer, 512, "drop", tmp_path)


def test_inputs_in_every_chat_format(tmp_path):
    alpaca = {"instruction": "Add", "input": "1+1", "output": "2"}
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    openai = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (alpaca, sharegpt, openai)) + "\n")
    table = load_examples(path)
    assert table.num_rows == 3 and table.column("messages")[0].as_py()[1]["content"] == "2"
    (tmp_path / "array.json").write_text(json.dumps([alpaca, openai]))
    assert load_examples(tmp_path / "array.json").num_rows == 2


def test_bad_input_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n" + '{"instruction": "x"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: record with fields"):
        load_examples(path)
    path.write_text('{"messages": [}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: invalid JSON"):
        load_examples(path)


def test_eval_split_is_stable_under_reordering():
    table = examples_table([{"id": f"id{i}", "messages": CONVERSATION[:3], "source": "t"} for i in range(400)])
    _, held = split_eval(table, 0.1, 1000)
    _, held_reversed = split_eval(table.take(pa.array(range(399, -1, -1))), 0.1, 1000)
    assert 10 < held.num_rows < 80
    assert sorted(held.column("id").to_pylist()) == sorted(held_reversed.column("id").to_pylist())
