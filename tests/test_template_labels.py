"""Errors that name the fix: string labels, renamed text columns, micro-batches smaller than an example."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from instruct.cli import main
from instruct.config import ConfigError
from instruct.io.shards import read_shards
from instruct.tune import load_config

ROWS = [{"id": "r1", "sentence": "The staff were warm and the room was spotless.", "label": "positive"},
        {"id": "r2", "sentence": "Cold food, rude waiter, never again.", "label": "negative"}]


def recipe(tmp_path, **params) -> str:
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"read": {"format": "dataset", "paths": [str(data)]},
                                    "steps": [{"template": {"templates": "sentiment", "names": ["review_polarity"],
                                                            **params}}],
                                    "write": {"output": str(tmp_path / "out"), "report": False}}), encoding="utf-8")
    return str(path)


def test_string_labels_name_the_label_map_and_columns_rename_fields(tmp_path):
    runner = CliRunner()
    failed = runner.invoke(main, ["build", recipe(tmp_path, columns={"sentence": "text"})])
    assert failed.exit_code == 2
    error = failed.output.strip().splitlines()[-1]
    assert "label must be an index into answer_choices (0..1: negative, positive), got 'positive'" in error
    assert "label_map" in error and "'list object'" not in error

    built = runner.invoke(main, ["build", recipe(tmp_path, columns={"sentence": "text"}),
                                 "steps.template.label_map={negative: 0, positive: 1}"])
    assert built.exit_code == 0, built.output
    answers = {row["id"].split("#")[0]: row["messages"][-1]["content"] for row in read_shards(tmp_path / "out").to_pylist()}
    assert answers == {"r1": "positive", "r2": "negative"}


def test_label_map_values_must_be_indexes(tmp_path):
    result = CliRunner().invoke(main, ["build", recipe(tmp_path, columns={"sentence": "text"},
                                                       label_map={"positive": "yes"})])
    assert result.exit_code == 2 and "template.label_map: values must be answer_choices indexes" in result.output


def test_micro_batch_below_max_length_names_the_fix():
    with pytest.raises(ConfigError, match=r"train.micro_batch_tokens=100 is below data.max_length=256 .* "
                                          r"set train.micro_batch_tokens=256 or more, or data.max_length=100"):
        load_config(None, ["train.micro_batch_tokens=100", "data.max_length=256", "data.path=x", "output=y"])
