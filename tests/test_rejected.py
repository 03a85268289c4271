"""`DIR/rejected/` has one schema whatever was dropped (read rejects, documents, raw labeled rows), so it loads."""
from __future__ import annotations

import json
from collections import Counter

import datasets
from sample_inputs import REPO, manifest_drops, recipe_on_samples

from instruct.io.rejects import REJECT_SCHEMA
from instruct.io.shards import read_shards
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build


def test_read_and_step_rejects_of_any_schema_load_as_one_dataset(tmp_path, docstrings):
    lines = [json.dumps({"id": name, "text": text}) for name, text in docstrings[:60]]
    lines[1:1] = ['{"text": broken', '{"body": "no text"}']
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs = build(load_recipe(None, data={"read": {"format": "jsonl", "paths": [str(tmp_path / "docs.jsonl")]},
                                         "steps": ["gopher_quality"],
                                         "write": {"output": str(tmp_path / "docs"), "report": False}}),
                 show_progress=False)
    recipe, data = recipe_on_samples(REPO / "pipelines" / "labeled.yaml", tmp_path / "labeled")
    labeled = build(recipe, data, show_progress=False)

    files = sorted(str(p) for p in (tmp_path / "docs" / "rejected").glob("*.arrow"))
    files += sorted(str(p) for p in (tmp_path / "labeled" / "rejected").glob("*.arrow"))
    assert any("/read-" in f for f in files) and any("/s0-" in f for f in files)
    loaded = datasets.load_dataset("arrow", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.column_names == REJECT_SCHEMA.names
    assert Counter(zip(loaded["step"], loaded["reason"])) == manifest_drops(docs) + manifest_drops(labeled)

    rows = {row["reason"]: row for row in loaded}
    assert rows["invalid_json"]["where"].endswith("docs.jsonl:2") and rows["invalid_json"]["text"].strip() == '{"text": broken'
    unlabeled = rows["unlabeled"]  # a raw labeled row: its columns travel in `meta`, readable text stays
    assert unlabeled["step"] == "template" and json.loads(unlabeled["meta"])["row"]["label"] in (-1, None)
    dropped_doc = next(row for row in loaded if row["step"] == "gopher_quality")
    assert dropped_doc["text"] in {text for _, text in docstrings[:60]}
    assert read_shards(tmp_path / "docs" / "rejected").schema == REJECT_SCHEMA
