"""Every shipped build recipe runs as it is on the generated samples (one test per file)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sample_inputs import assert_accounted, build_recipes, recipe_on_samples

from instruct.cli import main
from instruct.pipeline.runner import build


@pytest.mark.parametrize("path", build_recipes(), ids=lambda p: p.name)
def test_recipe_runs_and_accounts_for_every_record(path, tmp_path):
    recipe, data = recipe_on_samples(path, tmp_path / "out")
    manifest = build(recipe, data, show_progress=False)
    counts = manifest["counts"]
    assert counts["read"] > 0 and counts["written"] > 0
    assert_accounted(tmp_path / "out", manifest)
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


def test_samples_command_writes_every_kind_of_input(tmp_path):
    result = CliRunner().invoke(main, ["samples", "--output", str(tmp_path / "generated")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "generated"
    assert len(list((root / "web").glob("*.warc.gz"))) == 2
    assert len(list((root / "books").glob("*.txt"))) > 50
    assert (root / "code" / "src" / "json" / "decoder.py").exists()
    assert (root / "code" / "node_modules").is_dir() and (root / "code" / "static" / "logo.png").exists()
    assert sorted(p.name for p in (root / "docs").iterdir()) == ["docstrings-0000.jsonl", "docstrings-0001.jsonl.gz"]
    assert (root / "labeled" / "sentiment_train.csv").is_file()  # what labeled.yaml and mixture.yaml read
    assert "web pages" in result.output
