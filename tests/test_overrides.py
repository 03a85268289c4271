"""One override path: flags and `key=value` are the same setting; step parameters by name or index; every command."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from tiny_models import save_tiny_llama

from instruct.cli import main
from instruct.config import ConfigError
from instruct.io.shards import read_json, write_table
from instruct.overrides import apply
from instruct.pipeline.recipe import load_recipe
from instruct.schema import examples_table

STEPS = {"steps": ["exact_dedup", {"language": {"min_score": 0.65}}, {"gopher_quality": None},
                   {"language": {"min_score": 0.1}}]}


def test_step_parameters_by_name_and_by_index():
    data = apply(json.loads(json.dumps(STEPS)), ["steps.gopher_quality.min_doc_words=3", "steps.3.min_score=0.2",
                                                 "steps.exact_dedup.enabled=true"])
    assert data["steps"][2] == {"gopher_quality": {"min_doc_words": 3}}
    assert data["steps"][3] == {"language": {"min_score": 0.2}} and data["steps"][0] == {"exact_dedup": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"has 'language' at 1, 3; name one by index, e.g. steps.3.KEY=VALUE"):
        apply(json.loads(json.dumps(STEPS)), ["steps.language.min_score=0.5"])
    with pytest.raises(ConfigError, match=r"no item 'pii' \(it has exact_dedup, language, gopher_quality, language\)"):
        apply(json.loads(json.dumps(STEPS)), ["steps.pii.types=[EMAIL]"])
    with pytest.raises(ConfigError, match="has 4 items, no index 7"):
        apply(json.loads(json.dumps(STEPS)), ["steps.7.x=1"])


def test_build_step_override_reaches_the_step_and_typos_name_the_key(tmp_path, docstrings):
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": n, "text": t}) + "\n" for n, t in docstrings[:40]), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"read": {"format": "jsonl", "paths": [str(source)]},
                                      "steps": [{"gopher_quality": {"min_doc_words": 50}}]}), encoding="utf-8")
    runner = CliRunner()
    loose = runner.invoke(main, ["build", str(recipe), "--output", str(tmp_path / "loose"),
                                 "steps.gopher_quality.min_doc_words=1", "write.report=false"])
    assert loose.exit_code == 0, loose.output
    manifest = read_json(tmp_path / "loose" / "manifest.json")
    assert manifest["config"]["steps"] == [{"gopher_quality": {"min_doc_words": 1}}]
    strict = load_recipe(str(recipe), ["write.report=false", f"write.output={tmp_path / 'strict'}"])
    from instruct.pipeline.runner import build

    dropped = build(strict, show_progress=False)["counts"]["steps"][1]["dropped"]
    assert sum(dropped.values()) > sum(manifest["counts"]["steps"][1]["dropped"].values())  # the override applied

    typo = runner.invoke(main, ["build", str(recipe), "--output", str(tmp_path / "typo"),
                                "steps.gopher_quality.min_doc_wrds=1"])
    assert typo.exit_code == 2 and "unknown key(s) min_doc_wrds" in typo.output


def test_a_flag_and_its_key_value_spelling_are_the_same_setting(tmp_path):
    by_flag = load_recipe(None, [], flags={"workers": 2, "read.format": "jsonl", "read.paths": ["a.jsonl"]})
    by_key = load_recipe(None, ["workers=2", "read.format=jsonl", "read.paths=[a.jsonl]"])
    assert by_flag == by_key
    assert load_recipe(None, ["workers=5"], flags={"workers": 2}).workers == 2  # the flag wins
    help_text = CliRunner().invoke(main, ["build", "--help"]).output
    assert "--input-format" in help_text  # `--format` stays as its alias


def test_eval_serve_and_export_take_key_value_overrides(tmp_path):
    model = save_tiny_llama(tmp_path / "model")
    rows = [{"id": f"ex{i}", "source": "t", "meta": {"answer_choices": ["Letter", "Number"]},
             "messages": [{"role": "user", "content": f"item {i}"}, {"role": "assistant", "content": "Letter"}]}
            for i in range(4)]
    write_table(examples_table(rows), tmp_path / "data" / "shards" / "part-0000.arrow")
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "--input", str(tmp_path / "data"), "--model", str(model),
                                  "--output", str(tmp_path / "eval"), "limit=2", "batch_size=1"])
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "eval" / "eval.json")["examples"] == 2
    bad = runner.invoke(main, ["eval", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "e2"),
                               "batch_sise=1"])
    assert bad.exit_code == 2 and "eval: unknown key(s) batch_sise" in bad.output

    served = runner.invoke(main, ["serve", "--engine", "fake", "port=70000"])
    assert served.exit_code == 2 and "70000 is not a TCP port" in served.output

    out = tmp_path / "out.jsonl"
    exported = runner.invoke(main, ["export", f"input={tmp_path / 'data'}", "format=openai", f"output={out}"])
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == 4
