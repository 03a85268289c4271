"""No silent empties: build, export and synth that write nothing exit 2 naming the top reason and the fix."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner
from sample_inputs import REPO, recipe_on_samples

from instruct.cli import main
from instruct.io.examples import load_examples
from instruct.io.shards import read_shards
from instruct.pipeline.runner import build
from instruct.serve.process import server_process


def test_a_build_that_rejects_every_row_names_the_text_field_to_use(tmp_path):
    rows = [{"sentence": "I loved this film, the acting was superb.", "label": 1},
            {"sentence": "Dull, slow and far too long.", "label": 0}]
    path = tmp_path / "labeled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["build", str(REPO / "pipelines" / "web.yaml"), "--input", str(path), "--format", "jsonl",
            "--output", str(tmp_path / "out"), "steps=[]"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: build wrote nothing: all 2 records were dropped, 2 as read/missing_text_field")
    assert "likely fix: read.text_field=sentence" in error and "read.format: dataset" in error
    assert "--allow-empty" in error
    assert (tmp_path / "out" / "manifest.json").exists()  # the evidence stays

    allowed = CliRunner().invoke(main, args + ["--allow-empty"])
    assert allowed.exit_code == 0, allowed.output
    fixed = CliRunner().invoke(main, args[:-1] + ["steps=[]", "read.text_field=sentence"])
    assert fixed.exit_code == 0 and "wrote 2" in fixed.output, fixed.output


def test_export_alpaca_of_templated_rows_keeps_fewshot_turns_as_history(tmp_path):
    recipe, data = recipe_on_samples(REPO / "pipelines" / "labeled.yaml", tmp_path / "labeled")
    manifest = build(recipe, data, show_progress=False)
    out = tmp_path / "alpaca.jsonl"
    result = CliRunner().invoke(main, ["export", str(tmp_path / "labeled"), "--format", "alpaca", "--output", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == manifest["counts"]["written"] > 0
    assert all(len(r["history"]) == 1 and len(r["history"][0]) == 2 for r in records)  # one demonstration turn

    shards = {tuple((m["role"], m["content"]) for m in e["messages"]) for e in read_shards(tmp_path / "labeled").to_pylist()}
    back = {tuple((m["role"], m["content"]) for m in e["messages"]) for e in load_examples(out)}
    assert back == shards  # history + the last exchange are the whole conversation again


def test_export_that_can_hold_no_row_exits_2(tmp_path):
    from instruct.io.shards import write_table
    from instruct.schema import examples_table

    write_table(examples_table([{"id": "a", "source": "t", "meta": {},
                                 "messages": [{"role": "assistant", "content": "hello"}]}]), tmp_path / "in" / "a.arrow")
    args = ["export", str(tmp_path / "in"), "--format", "alpaca", "--output", str(tmp_path / "a.jsonl")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "export wrote nothing: all 1 records were dropped" in result.output
    assert "likely fix: --format sharegpt or openai" in result.output
    assert CliRunner().invoke(main, args + ["--allow-empty"]).exit_code == 0


def test_synth_that_drops_every_candidate_exits_2(tmp_path):
    with server_process("--engine", "fake") as url:
        command = [sys.executable, "-m", "instruct", "synth", "--method", "self-instruct", "--num", "5",
                   "--output", str(tmp_path / "si"), "--base-url", url, "--model", "fake",
                   "self_instruct.rules.min_words=10000", "self_instruct.request_batch_size=2", "progress=false"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        allowed = subprocess.run(command + ["--allow-empty"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: synth wrote nothing: all ") and "rejected.jsonl" in error, error
    assert allowed.returncode == 0, allowed.stderr
