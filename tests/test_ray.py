"""The Ray executor on a local 2-CPU cluster: same shards, counts and decisions as the local executor."""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from instruct.config import ConfigError
from instruct.errors import UnitError
from instruct.filters.sentence_dedup import span_hash, spans
from instruct.io.readers.base import InputError
from instruct.io.shards import read_shards, read_table, shard_paths
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:  # workers import the user steps of tests/build_steps.py, as a user's would from PYTHONPATH
        path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    if started:
        ray.shutdown()


def _perturb(text: str, rng: random.Random, per_40_words: int = 1) -> str:
    words = text.split()
    for _ in range(max(1, per_40_words * len(words) // 40)):
        i = rng.randrange(len(words))
        words[i] = words[i][::-1]
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, docstrings) -> Path:
    """Four JSONL files of stdlib docstrings with exact copies, near copies, shared ids, PII and a bad line."""
    folder = tmp_path_factory.mktemp("ray_corpus")
    rng = random.Random(7)
    texts = [d for _, d in docstrings if len(d.split()) > 25][:300]
    for f in range(4):
        with open(folder / f"part{f}.jsonl", "w", encoding="utf-8") as handle:
            for k in range(120):
                text = rng.choice(texts)
                if rng.random() < 0.25:
                    text = _perturb(text, rng)
                if rng.random() < 0.05:
                    text += f" Contact maintainer{k}@example.org for details."
                record = {"text": text}
                if rng.random() < 0.05:
                    record["id"] = f"shared{rng.randrange(4)}"
                handle.write(json.dumps(record) + "\n")
            chained = rng.choice(texts)
            for _ in range(6):  # a chain of look-alikes whose ends differ: clusters split at the kept member
                chained = _perturb(chained, rng, 3)
                handle.write(json.dumps({"text": chained}) + "\n")
            handle.write("{not json\n")
    with open(folder / "eval.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts[:60:6]):
            handle.write(json.dumps({"id": f"q{i}", "question": " ".join(text.split()[:30])}) + "\n")
    return folder


def _recipe(corpus: Path, output: Path, executor: str, workers: int, **extra) -> dict:
    return {"read": {"paths": [str(corpus / "part*.jsonl")]},
            "steps": ["gopher_repetition", "pii",
                      {"decontaminate": {"eval_sets": [str(corpus / "eval.jsonl")], "text_fields": ["question"]}},
                      "exact_dedup", {"minhash_dedup": {"threshold": 0.6, "keep": "longest"}}],
            "write": {"output": str(output), "shard_size": 50}, "executor": executor, "workers": workers, **extra}


def _build(data: dict) -> dict:
    return build(load_recipe(None, data=data), data, show_progress=False)


def _tables(folder: Path) -> dict[str, list]:
    return {p.name: read_table(p).to_pylist() for p in sorted(folder.glob("*.arrow"))}


def _decisions(output: Path) -> dict[str, list]:
    return {f"{p.parent.name}/{p.name}": read_table(p).to_pylist()
            for p in sorted((output / ".work").glob("decision*/*.arrow"))}


def _side_rows(output: Path, step: str, name: str) -> list[dict]:
    """A side table's rows: one file, NAME.arrow, whichever executor wrote it."""
    return read_table(output / step / f"{name}.arrow").to_pylist()


@pytest.mark.slow
def test_ray_output_identical_to_local(ray_cluster, corpus, tmp_path):
    local = _build(_recipe(corpus, tmp_path / "local", "local", 1))
    distributed = _build(_recipe(corpus, tmp_path / "ray", "ray", 2))

    assert [p.name for p in shard_paths(tmp_path / "local")] == [p.name for p in shard_paths(tmp_path / "ray")]
    assert read_shards(tmp_path / "local").equals(read_shards(tmp_path / "ray"))
    assert _tables(tmp_path / "local" / "rejected") == _tables(tmp_path / "ray" / "rejected")
    for key in ("read", "written", "rejected", "steps"):
        assert local["counts"][key] == distributed["counts"][key], key
    steps = {s["step"]: s for s in local["counts"]["steps"]}
    for step, reason in (("exact_dedup", "exact_duplicate"), ("minhash_dedup", "near_duplicate"),
                         ("decontaminate", "contaminated"), ("read", "invalid_json")):
        assert steps[step]["dropped"].get(reason, 0) > 0, f"the corpus must exercise {step}"
    assert sum(steps["pii"].get("counters", {}).values()) > 0  # pii found something

    assert _decisions(tmp_path / "local") == _decisions(tmp_path / "ray")
    for step in ("exact_dedup", "minhash_dedup", "decontaminate"):
        assert local["global_steps"][step]["counters"] == distributed["global_steps"][step]["counters"], step
    assert local["global_steps"] == distributed["global_steps"]  # one decision: the same reports too
    near = distributed["global_steps"]["minhash_dedup"]["report"]
    assert near["chain_splits"] > 0
    assert near["verified_pairs"] + near["rejected_pairs"] == near["candidate_pairs"]  # all checked
    for step, name in (("exact_dedup", "clusters"), ("minhash_dedup", "clusters"), ("decontaminate", "contaminated"),
                       ("decontaminate", "eval_hits")):
        assert _side_rows(tmp_path / "local", step, name) == _side_rows(tmp_path / "ray", step, name), (step, name)

    again = _build(_recipe(corpus, tmp_path / "ray", "ray", 2))  # resumed: every unit and decision is done
    assert again["counts"] == distributed["counts"]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_connected_components_match_union_find(executor, tmp_path, request):
    """One connected-components module, the same labels as union-find on both shuffles."""
    from instruct.dedup.components import connected_components
    from instruct.executor.layout import RunLayout
    from instruct.executor.local_shuffle import ROWS_PER_PARTITION, LocalShuffle
    from instruct.executor.ray_shuffle import RayShuffle
    from tests.union_find import components

    rng = np.random.default_rng(3)
    n = 400
    chain = np.stack([np.arange(100, 199), np.arange(101, 200)], axis=1)[::-1]  # a long path, worst case
    star = np.stack([np.full(30, 250), np.arange(251, 281)], axis=1)
    random_edges = rng.integers(280, n, size=(90, 2))
    edges = np.concatenate([chain, star, random_edges])
    edges = edges[edges[:, 0] != edges[:, 1]]
    layout = RunLayout(tmp_path)
    if executor == "ray":
        ray = request.getfixturevalue("ray_cluster")
        shuffle = RayShuffle(ray, layout, 0, [], tmp_path / "side", 0, cpus=2)
        shuffle.partitions = 3
        blocks = [ray.put(pa.table({"u": part[:, 0], "v": part[:, 1]})) for part in np.array_split(edges, 4)]
    else:
        shuffle = LocalShuffle(layout, 0, [], tmp_path / "side", records=3 * ROWS_PER_PARTITION)
        assert shuffle.partitions == 3
        blocks = [shuffle._put(pa.table({"u": part[:, 0], "v": part[:, 1]})) for part in np.array_split(edges, 4)]
    with shuffle:
        result = pa.concat_tables(list(shuffle.tables(connected_components(shuffle, blocks))))
    labels = np.arange(n)
    labels[result.column("u").to_numpy()] = result.column("v").to_numpy()
    assert np.array_equal(labels, components(n, edges))
    assert len(np.unique(result.column("u").to_numpy())) == result.num_rows  # one label per node


@pytest.mark.slow
def test_strict_input_error_surfaces_from_a_worker(ray_cluster, corpus, tmp_path):
    data = _recipe(corpus, tmp_path / "strict", "ray", 2, strict=True)
    data["steps"] = ["pii"]
    with pytest.raises(InputError, match=r"part\d\.jsonl:127"):
        _build(data)


BOILERPLATE = ["Subscribe to our newsletter. You will get the weekly digest. Unsubscribe at any time.",
               "This site uses cookies. By browsing you accept them. Read the policy for details."]


@pytest.fixture(scope="module")
def topics_corpus(tmp_path_factory, docstrings) -> Path:
    """Three JSONL files of docstrings with shared boilerplate lines, perplexity scores and topics."""
    folder = tmp_path_factory.mktemp("topics_corpus")
    rng = random.Random(11)
    texts = [d for _, d in docstrings if len(d.split()) > 60][:150]

    def record(f: int, k: int, text: str) -> dict:
        lines = [text] + [b for b in BOILERPLATE if rng.random() < 0.4]
        topic = f"t{rng.randrange(12)}" if k % 9 else f"rare{f}{k}"  # a few topics of one document
        shared = {"id": "shared"} if rng.random() < 0.05 else {}
        return {"text": "\n".join(lines), "topic": topic, "perplexity": {"perplexity": rng.uniform(5, 500)}, **shared}

    for f in range(3):
        (folder / f"part{f}.jsonl").write_text("".join(json.dumps(record(f, k, text)) + "\n"
                                                       for k, text in enumerate(texts[f::3])), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_reduce_steps_decide_the_same_on_ray_as_locally(ray_cluster, topics_corpus, tmp_path):
    """sentence_dedup, perplexity_buckets and a user step with only map + reduce, on both executors."""
    steps = [{"sentence_dedup": {"min_docs": 3, "min_words": 70}}, {"build_steps:RareTopics": {"min_docs": 2}},
             {"perplexity_buckets": {"min_docs": 20}}]
    results = {}
    for executor, workers in (("local", 1), ("ray", 2)):
        data = {"read": {"paths": [str(topics_corpus / "*.jsonl")]}, "steps": steps,
                "write": {"output": str(tmp_path / executor), "shard_size": 40}, "executor": executor,
                "workers": workers}
        results[executor] = _build(data)
    local, distributed = results["local"], results["ray"]
    assert read_shards(tmp_path / "local").equals(read_shards(tmp_path / "ray"))
    assert _tables(tmp_path / "local" / "rejected") == _tables(tmp_path / "ray" / "rejected")
    assert _decisions(tmp_path / "local") == _decisions(tmp_path / "ray")
    assert local["counts"] == distributed["counts"] and local["global_steps"] == distributed["global_steps"]
    assert _side_rows(tmp_path / "local", "sentence_dedup", "repeated_spans") == \
        _side_rows(tmp_path / "ray", "sentence_dedup", "repeated_spans")
    drops = {s["step"]: s["dropped"] for s in local["counts"]["steps"]}
    assert drops["sentence_dedup"]["sentence_dedup_too_short"] > 0 and drops["RareTopics"]["rare_topic"] > 0
    assert drops["perplexity_buckets"]["bucket_tail"] > 0
    rare = local["global_steps"]["RareTopics"]
    assert rare["counters"]["rare_topics"] == len(rare["report"]["rare"]) >= 3  # a topic per file at least
    repeated = {row["hash"] for row in _side_rows(tmp_path / "local", "sentence_dedup", "repeated_spans")}
    assert {span_hash(s) for line in BOILERPLATE for _, _, s in spans(line, 3)} <= repeated


@pytest.mark.parametrize("executor,workers", [("local", 2), ("ray", 2)])
def test_a_failing_step_names_itself_the_unit_and_the_worker_traceback(executor, workers, corpus, tmp_path,
                                                                       request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    data = _recipe(corpus, tmp_path / "failing", executor, workers)
    data["steps"] = ["pii", {"build_steps:FailOn": {"file": "part2.jsonl"}}]
    with pytest.raises(UnitError) as raised:
        _build(data)
    error = raised.value
    assert error.step == "FailOn" and error.unit.startswith("part2_jsonl-")
    assert error.error == "ZeroDivisionError: cannot judge part2.jsonl"
    assert 'build_steps.py", line' in error.traceback and "raise ZeroDivisionError" in error.traceback
    assert str(error).startswith(f"step FailOn failed on unit {error.unit}: ZeroDivisionError: cannot judge")


def test_missing_ray_says_how_to_install(monkeypatch):
    from instruct.executor.ray_cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'instruct\[ray\]'"):
        import_ray()
