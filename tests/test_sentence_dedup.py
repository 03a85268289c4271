"""`sentence_dedup` + `sentence_dedup_strip`: spans repeated across documents removed, short leftovers dropped."""
from __future__ import annotations

import json

from sample_inputs import assert_accounted

from instruct.filters.sentence_dedup import SentenceDedup, spans
from instruct.io.shards import read_table
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.schema import documents_table

BANNER = ("We use cookies to improve your experience on our site. By continuing you accept our use of cookies. "
          "Read our cookie policy to learn more.")
LICENCE = "Licensed under the Apache License, Version 2.0. You may not use this file except in compliance. See NOTICE."


def docs(docstrings, n: int, with_banner: int) -> list[dict]:
    bodies = [d for _, d in docstrings if 80 <= len(d.split()) <= 300][:n]
    rows = [{"id": f"d{i}", "text": (BANNER + "\n" if i < with_banner else "") + body} for i, body in enumerate(bodies)]
    rows.append({"id": "stub", "text": BANNER + "\n" + LICENCE + "\nShort page."})
    return rows


def test_spans_are_runs_of_three_sentences_per_line():
    found = [s for _, _, s in spans("A b. C d. E f. G h.\nOne line only", 3)]
    assert found == ["a b. c d. e f.", "g h.", "one line only"]


def test_spans_in_min_docs_documents_count_and_short_leftovers_drop(docstrings):
    rows = docs(docstrings, 6, with_banner=2)  # banner in 2 bodies + the stub: 3 documents
    table = documents_table(rows)
    out = SentenceDedup(min_docs=3).apply(table)
    assert dict(zip(table.column("id").to_pylist(), out.reasons))["stub"] == "sentence_dedup_too_short"
    assert [r for r in out.reasons if r] == ["sentence_dedup_too_short"]
    assert out.counters["repeated_spans"] == 1 and out.counters["documents_with_repeated_spans"] == 3
    assert SentenceDedup(min_docs=4).apply(table).reasons == [None] * len(rows)  # below the threshold


def test_build_strips_the_repeated_banner_and_accounts_for_every_row(tmp_path, docstrings):
    rows = docs(docstrings, 8, with_banner=5)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    recipe = load_recipe(None, data={
        "read": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*.jsonl")]},
        "steps": [{"sentence_dedup": {"min_docs": 3}},
                  {"sentence_dedup_strip": {"spans": str(out / "sentence_dedup" / "repeated_spans.arrow")}}],
        "write": {"output": str(out)}})
    manifest = build(recipe, show_progress=False)
    assert manifest["counts"]["written"] == len(rows) - 1
    assert_accounted(out, manifest)
    texts = [t for path in sorted((out / "shards").glob("*.arrow")) for t in read_table(path).column("text").to_pylist()]
    assert len(texts) == len(rows) - 1 and not any("cookies" in t for t in texts)
    assert all(len(t.split()) >= 50 for t in texts)
