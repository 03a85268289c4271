"""Continued pre-training on DOCUMENT rows and documents mixed into SFT, on a tiny random Llama."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tune_packing import load
from test_tune_support import (  # noqa: F401  (fixtures)
    conversations,
    run_together,
    tiny_config,
    tiny_data,
    tiny_model,
)

from instruct.io.shards import write_table
from instruct.schema import documents_table
from instruct.tune import train
from instruct.tune.data import IGNORE, TokenizedSet, tokenize_table
from instruct.tune.documents import document_windows, end_of_text_id
from instruct.tune.packing import collate
from instruct.tune.training import loss_sum

ROOT = Path(__file__).resolve().parents[1]


def document_rows(docstrings: list[tuple[str, str]], count: int, per_document: int = 6) -> list[dict]:
    """Real prose: each document is several consecutive stdlib docstrings (a few hundred tokens)."""
    rows = []
    for d in range(count):
        parts = docstrings[d * per_document: (d + 1) * per_document]
        rows.append({"id": f"doc{d}", "text": "\n\n".join(f"{name}\n{doc}" for name, doc in parts),
                     "source": "web", "url_or_path": f"doc{d}", "meta": "{}"})
    return rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def doc_shards(tmp_path_factory, docstrings) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    write_table(documents_table(document_rows(docstrings, 24)), folder / "part-0000.arrow")
    return folder


@pytest.mark.parametrize("stride", [64, 40, 1])
def test_windows_train_every_token_exactly_once(tokenizer, docstrings, stride):
    tokens = np.asarray(tokenizer("\n".join(d for _, d in docstrings[:20]))["input_ids"] + [end_of_text_id(tokenizer)])
    windows = document_windows(tokens, max_length=64, stride=stride)
    assert all(len(ids) <= 64 and len(ids) == len(t) for ids, t in windows)
    trained = np.concatenate([t[t != IGNORE] for _, t in windows])
    assert np.array_equal(trained, tokens[1:])  # every next token, in order, exactly once
    starts = [k * stride for k in range(len(windows))]
    for start, (ids, targets) in zip(starts, windows):  # inputs are the document's tokens from `start` on
        assert np.array_equal(ids, tokens[start: start + len(ids)])
        trained = np.flatnonzero(targets != IGNORE)
        assert len(trained) and np.array_equal(targets[trained], tokens[start + trained + 1])
    if stride == 64:  # no overlap: the windows partition the document's inputs
        assert np.array_equal(np.concatenate([ids for ids, _ in windows]), tokens[:-1])
        assert all((t != IGNORE).all() for _, t in windows)


def test_documents_are_tokenised_with_end_of_text_and_windowed(tokenizer, docstrings):
    rows = document_rows(docstrings, 3) + [{"id": "empty", "text": "  ", "source": "web", "url_or_path": "",
                                            "meta": "{}"}]
    data = tokenize_table(documents_table(rows), tokenizer, 128, "drop", None, stride=96)
    assert data.documents == 3 and data.dropped == {"empty_document": 1} and data.examples == 0
    assert data.windows == len(data) > 3
    last = [t for i, t in zip(data.ids, data.targets) if i.startswith("doc0#")][-1]
    assert last[last != IGNORE][-1] == tokenizer.convert_tokens_to_ids("<|endoftext|>")  # learns to end a text
    whole = tokenizer(rows[0]["text"], add_special_tokens=False)["input_ids"]
    assert sum(int((t != IGNORE).sum()) for i, t in zip(data.ids, data.targets) if i.startswith("doc0#")) == len(whole)


def window_set(tokenizer, docstrings) -> TokenizedSet:
    return tokenize_table(documents_table(document_rows(docstrings, 4, per_document=2)), tokenizer, 48, "drop", None)


@pytest.mark.parametrize("attention", ["sdpa", "packed_sdpa"])
def test_packed_document_loss_equals_unpacked(tiny_model, tokenizer, docstrings, attention):
    model = load(tiny_model, attention)
    data = window_set(tokenizer, docstrings)
    everything = list(range(len(data)))
    with torch.no_grad():
        packed = loss_sum(model, collate(data, everything, pack=True), select_logits=True)
        separate = sum(loss_sum(model, collate(data, [i], pack=False), select_logits=False) for i in everything)
    assert data.trained_tokens == sum(len(x) for x in data.input_ids)  # pretraining trains every position
    assert abs(float(packed - separate)) / data.trained_tokens < 1e-4


@pytest.mark.parametrize("attention", ["sdpa", "packed_sdpa"])
def test_no_attention_crosses_a_document_boundary(tiny_model, tokenizer, docstrings, attention):
    """Changing the first document changes nothing downstream in the packed row; the control leaks."""
    model = load(tiny_model, attention)
    data = window_set(tokenizer, docstrings)
    batch = collate(data, [0, 1, 2], pack=True)
    first = len(data.input_ids[0])
    changed = batch.inputs["input_ids"].clone()
    changed[0, :first] = torch.randint(100, 1000, (first,))
    with torch.no_grad():
        before = model(**batch.inputs, use_cache=False).logits[0, first:]
        after = model(**{**batch.inputs, "input_ids": changed}, use_cache=False).logits[0, first:]
        leaky_before = model(input_ids=batch.inputs["input_ids"]).logits[0, first:]
        leaky_after = model(input_ids=changed).logits[0, first:]
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(leaky_before, leaky_after, atol=1e-3)  # without restarts it would attend across


def check_pretrain_result(result, output: Path) -> None:
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert result.eval_loss < result.initial_eval_loss
    saved = json.loads((output / "result.json").read_text())
    assert saved["objective"] == "pretrain" and saved["documents"] > 0 and saved["windows"] > saved["documents"]
    assert saved["tokens_trained"] == sum(r["trained_tokens"] for r in result.log if "loss" in r)
    assert saved["eval_perplexity"] == pytest.approx(np.exp(saved["eval_loss"]))
    assert saved["eval_perplexity"] < saved["initial_eval_perplexity"]


def test_document_shards_pretrain_with_lora(tiny_model, doc_shards, tmp_path):
    # 6 steps: eval loss 10.780 -> 10.647 (10 steps: -> 10.622), the same held-out windows before and after
    config = tiny_config(tiny_model, doc_shards, tmp_path / "out", "train.max_steps=6", "data.max_length=128",
                         "data.objective=pretrain", "data.eval_fraction=0.15")
    check_pretrain_result(train(config, show_progress=False), tmp_path / "out")


def test_document_jsonl_pretrains_with_full_fine_tuning(tiny_model, docstrings, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"body": r["text"], "id": r["id"]}) + "\n" for r in document_rows(docstrings, 24)))
    # 6 steps: eval loss 10.781 -> 10.456 (10 steps: -> 10.267)
    config = tiny_config(tiny_model, path, tmp_path / "out", "train.max_steps=6", "data.max_length=128",
                         "data.text_field=body", "method.name=full", "train.lr=1e-3", "data.stride=96",
                         "data.eval_fraction=0.15")
    check_pretrain_result(train(config, show_progress=False), tmp_path / "out")


def test_objective_mismatch_is_one_line_before_the_model_loads(doc_shards, tiny_data, tmp_path):
    # the model does not exist: the objective check must come first
    cli = [sys.executable, "-m", "instruct"]
    sft, pretrain, evaluation = run_together(
        [*cli, "tune", "--data", str(doc_shards), "--output", str(tmp_path / "a"), "data.objective=sft",
         "model=/nonexistent/model"],
        [*cli, "tune", "trainer/pretrain.yaml", "--data", str(tiny_data), "--output", str(tmp_path / "b"),
         "model=/nonexistent/model"],
        [*cli, "eval", "--data", str(doc_shards), "--output", str(tmp_path / "c")], timeout=300, cwd=ROOT)
    for process, key in ((sft, "data.objective=sft"), (pretrain, "data.objective=pretrain"), (evaluation, "EXAMPLE")):
        lines = process.stderr.strip().splitlines()
        assert process.returncode != 0 and len(lines) == 1 and "Traceback" not in process.stderr, process.stderr
        assert key in lines[0]
    assert str(doc_shards) in sft.stderr and "DOCUMENT" in sft.stderr and str(tiny_data) in pretrain.stderr
    assert "DOCUMENT" in evaluation.stderr and not (tmp_path / "a").exists()


def test_documents_mixed_into_sft_report_loss_per_source(tiny_model, doc_shards, tiny_data, tmp_path):
    from instruct.mixture import MixConfig, MixSource, MixWrite, mix

    manifest = mix(MixConfig(sources=[MixSource("chat", shards=str(tiny_data), weight=0.75),
                                      MixSource("replay", shards=str(doc_shards), weight=0.25)],
                             write=MixWrite(output=str(tmp_path / "mix"))), show_progress=False)
    assert manifest["schema"] == "MIXED"
    config = tiny_config(tiny_model, tmp_path / "mix", tmp_path / "out", "train.max_steps=8", "data.max_length=128",
                         "data.eval_fraction=0.25")
    result = train(config, show_progress=False)
    assert result.objective == "mixed" and result.documents > 0 and result.examples > 0
    assert set(result.loss_by_source) == {"chat", "replay"} == set(result.eval_loss_by_source)
    for name in ("chat", "replay"):
        assert result.eval_loss_by_source[name] < result.initial_eval_loss_by_source[name]
    steps = [r for r in result.log if "loss" in r]
    for record in steps:  # per-source losses add up to the step's loss
        parts = record["by_source"].values()
        assert sum(p["trained_tokens"] for p in parts) == record["trained_tokens"]
        assert sum(p["loss"] * p["trained_tokens"] for p in parts) / record["trained_tokens"] == pytest.approx(
            record["loss"], rel=1e-9)
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert set(saved["loss_by_source"]) == {"chat", "replay"}


def test_mixed_jsonl_of_chats_and_documents_loads_both(tmp_path, docstrings, tokenizer):
    from instruct.tune.data import load_examples, resolve_objective

    path = tmp_path / "mixed.jsonl"
    chats = conversations(docstrings, 3)
    path.write_text("".join(json.dumps({"messages": c["messages"]}) + "\n" for c in chats)
                    + json.dumps({"text": docstrings[5][1]}) + "\n")
    table = load_examples(path)
    assert resolve_objective(table, "auto", str(path)) == "mixed" and table.num_rows == 4
    data = tokenize_table(table, tokenizer, 256, "drop", None)
    assert data.examples == 3 and data.documents == 1
