"""One data funnel and one record reader: the same file works (or fails, with the same message) for
tune, eval, synth, decontamination, classifier data and seed tasks."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from instruct.dedup.decontaminate import load_eval_items
from instruct.io.examples import load_examples, load_rows
from instruct.io.readers.base import InputError
from instruct.quality.data import iter_records
from instruct.schema import SchemaError, schema_kind
from instruct.synth.self_instruct import load_seed_tasks

ALPACA = {"instruction": "Name a colour.", "output": "Blue."}
OPENAI = {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]}


def readers():
    """Every user-facing loader of JSON records, as a callable on a path."""
    return {"tune": load_rows, "eval": load_examples, "decontaminate": lambda p: load_eval_items(str(p), []),
            "classify": lambda p: list(iter_records(str(p))), "seed tasks": load_seed_tasks}


@pytest.mark.parametrize("name", ["chats.jsonl", "chats.jsonl.gz", "chats.json"])
def test_tune_and_eval_accept_the_same_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".json"):
        text = json.dumps([ALPACA, OPENAI], indent=2)  # a JSON array spread over lines
    else:
        text = "\n".join(json.dumps(r) for r in (ALPACA, OPENAI)) + "\n\n"
    (gzip.open(path, "wt") if name.endswith(".gz") else open(path, "w")).write(text)
    table, examples = load_rows(path), load_examples(path)
    assert schema_kind(table.schema) == "EXAMPLE" and table.to_pylist() == examples
    assert [e["messages"][-1]["content"] for e in examples] == ["Blue.", "Hi."]


def test_documents_train_but_do_not_evaluate(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "a plain document"}) + "\n")
    assert schema_kind(load_rows(path).schema) == "DOCUMENT"
    with pytest.raises(InputError, match=rf"{path}:1: .*chat"):
        load_examples(path)


@pytest.mark.parametrize("reader", sorted(readers()))
@pytest.mark.parametrize("bad_line, problem", [('{"instruction": ', "invalid JSON"),
                                               ("[1, 2]", "expected a JSON object, got int"),
                                               ('"just a string"', "expected a JSON object, got str")])
def test_a_bad_record_names_file_and_line_the_same_way_everywhere(tmp_path: Path, reader: str, bad_line: str,
                                                                  problem: str) -> None:
    path = tmp_path / "data.jsonl"
    good = {**ALPACA, "text": "x", "id": "1"}
    path.write_text(json.dumps(good) + "\n\n" + bad_line + "\n")
    where = f"{path}#0" if bad_line.startswith("[") else f"{path}:3"
    if bad_line.startswith("["):  # an array is read as the file's records when it comes first
        path.write_text(bad_line + "\n")
    with pytest.raises(InputError) as error:
        readers()[reader](path)
    assert str(error.value).startswith(f"{where}: {problem}"), str(error.value)


def test_shards_that_are_not_conversations_are_refused_by_eval(tmp_path: Path) -> None:
    from instruct.io.shards import write_table
    from instruct.schema import documents_table

    write_table(documents_table([{"id": "d", "text": "t", "source": "s", "url_or_path": "u", "meta": {}}]),
                tmp_path / "shards" / "part-00000.arrow")
    assert load_rows(tmp_path).num_rows == 1
    with pytest.raises(SchemaError, match="holds DOCUMENT rows"):
        load_examples(tmp_path)
