"""`instruct build` end to end: accounting, rejected/, CLI flags, kill -9 and resume, workers, datasets."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sample_inputs import REPO, assert_accounted, manifest_drops, recipe_on_samples

from instruct.cli import main
from instruct.io.readers.base import unit_key
from instruct.io.shards import read_json, read_shards, shard_paths, write_table
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.schema import EXAMPLE_SCHEMA, examples_table

TESTS = Path(__file__).parent


def write_docs(folder: Path, docstrings: list[tuple[str, str]], files: int, per_file: int,
               bad_lines: bool = False) -> list[Path]:
    """JSONL files of real docstrings; optionally with one bad line of each kind in the first file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(files):
        chunk = docstrings[index * per_file:(index + 1) * per_file]
        lines = [json.dumps({"id": name, "text": text}).encode() for name, text in chunk]
        if bad_lines and index == 0:
            lines[1:1] = [b'{"text": broken', b'{"text": "caf\xe9"}', b'{"body": "no text"}']
        path = folder / f"part-{index}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def test_cli_flags_replace_inputs_format_output_and_workers(tmp_path, docstrings):
    first, second = write_docs(tmp_path / "in", docstrings, files=2, per_file=40, bad_lines=True)
    output = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(REPO / "pipelines" / "web.yaml"), "--input", str(first),
                                       "--input", str(second), "--format", "jsonl", "--output", str(output),
                                       "--workers", "2", "steps=[gopher_quality]"])
    assert result.exit_code == 0, result.output
    manifest = read_json(output / "manifest.json")
    assert manifest["config"]["read"]["format"] == "jsonl"
    assert manifest["config"]["read"]["paths"] == [str(first), str(second)]
    assert manifest["config"]["workers"] == 2 and manifest["config"]["write"]["output"] == str(output)
    counts = manifest["counts"]
    assert counts["read"] == 83
    assert {k: v for k, v in manifest_drops(manifest).items() if k[0] == "read"} == {
        ("read", "invalid_json"): 1, ("read", "invalid_utf8"): 1, ("read", "missing_text_field"): 1}
    assert_accounted(output, manifest)
    assert f"read 83 · wrote {counts['written']}" in result.output

    strict = CliRunner().invoke(main, ["build", str(REPO / "pipelines" / "web.yaml"), "--input", str(first),
                                       "--format", "jsonl", "--output", str(tmp_path / "strict"), "--strict"])
    assert strict.exit_code != 0
    assert strict.output.strip() == f"Error: {first}:2: invalid_json (Expecting value)"


@pytest.mark.parametrize("user_sets", [False, True])
def test_pool_workers_share_the_cores_unless_the_user_set_the_threads(tmp_path, docstrings, user_sets):
    from instruct.executor.local import worker_threads

    if worker_threads(1) < 2:
        pytest.skip("one core: every share is one thread")
    # a setting the share would not give (torch caps OMP_NUM_THREADS at the cores)
    user_setting = str(1 if worker_threads(2) > 1 else 2) if user_sets else None
    paths = write_docs(tmp_path / "in", docstrings, files=2, per_file=5)
    log = tmp_path / "threads.log"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"read": {"format": "jsonl", "paths": [str(p) for p in paths]},
                                      "steps": [{"build_steps:TorchThreads": {"log": str(log)}}],
                                      "write": {"output": str(tmp_path / "out")}, "workers": 2}))
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env.update({"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                "INSTRUCT_NO_PROGRESS": "1", **({"OMP_NUM_THREADS": user_setting} if user_setting else {})})
    run = subprocess.run([sys.executable, "-m", "instruct", "build", str(recipe)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    threads = {line.split()[1] for line in log.read_text().splitlines()}
    assert threads == {user_setting or str(worker_threads(2))}


def kill_recipe(tmp_path: Path, inputs: Path, output: Path, seconds: float) -> Path:
    path = tmp_path / f"recipe-{output.name}.yaml"
    path.write_text(yaml.safe_dump({
        "read": {"format": "jsonl", "paths": [str(inputs / "*.jsonl")], "batch_size": 10},
        "steps": [{"build_steps:SlowStep": {"seconds": seconds, "log": str(tmp_path / "tables.log")}},
                  "exact_dedup"],
        "write": {"output": str(output), "shard_size": 25}}))
    return path


@pytest.mark.slow
def test_sigkill_then_rerun_redoes_no_finished_unit_and_matches_an_uninterrupted_run(tmp_path, docstrings):
    inputs = tmp_path / "in"
    paths = write_docs(inputs, docstrings, files=6, per_file=30)
    with open(paths[-1], "a", encoding="utf-8") as handle:  # a duplicate text for exact_dedup to drop
        handle.write(json.dumps({"id": "copy", "text": docstrings[0][1]}) + "\n")
    output = tmp_path / "killed"
    recipe = kill_recipe(tmp_path, inputs, output, seconds=0.4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "INSTRUCT_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "instruct", "build", str(recipe)]

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stats_folder = output / ".work" / "stage0"
    deadline = time.time() + 180
    while len(list(stats_folder.glob("*.stats.json"))) < 2 and time.time() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in stats_folder.glob("*.stats.json")}
    assert 2 <= len(finished) < 6, "the kill came too late to interrupt the run"
    finished_units = {read_json(p)["unit"] for p in finished}
    first_ids = {unit_key(str(p)): json.loads(p.read_text().splitlines()[0])["id"] for p in paths}
    log = tmp_path / "tables.log"
    before = log.read_text().splitlines()
    with open(log, "a") as handle:
        handle.write("RESTART\n")

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished units were not redone
    after = log.read_text().split("RESTART\n")[1].split()
    assert not {first_ids[u] for u in finished_units} & set(after[1::2])
    assert len(before) + len(after) // 2 >= 18  # every table of the unfinished units was processed

    reference = tmp_path / "uninterrupted"
    manifest = build(load_recipe(kill_recipe(tmp_path, inputs, reference, seconds=0.0)), show_progress=False)
    assert manifest["counts"]["written"] == 180 and manifest_drops(manifest) == {("exact_dedup", "exact_duplicate"): 1}
    assert_accounted(reference, manifest)
    assert_accounted(output, read_json(output / "manifest.json"))
    assert_same_files(output, reference, "shards")
    assert_same_files(output, reference, "rejected")


def assert_same_files(left: Path, right: Path, folder: str) -> None:
    names = sorted(p.name for p in (left / folder).glob("*.arrow"))
    assert names and names == sorted(p.name for p in (right / folder).glob("*.arrow"))
    for name in names:
        assert (left / folder / name).read_bytes() == (right / folder / name).read_bytes(), name


@pytest.mark.slow
def test_output_is_identical_with_one_and_two_workers(tmp_path, monkeypatch):
    """The web recipe, model-based steps included; the perplexity step scores the first 16 tokens (not 64),
    a quarter of the SmolLM2 forwards that dominate the build: its scores still land in every shard's meta.
    One thread per worker in both runs: a float GEMM's sums depend on how many threads split them (on
    an AVX-512 CPU one worker's two threads move perplexities in their sixth digit), which is no part
    of what splitting the units over workers may change."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kept by the executor's share_cores, read by the workers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the one-worker run is this process
    try:
        built_with_one_and_two_workers(tmp_path)
    finally:
        torch.set_num_threads(threads)


def built_with_one_and_two_workers(tmp_path: Path) -> None:
    for workers in (1, 2):
        recipe, data = recipe_on_samples(REPO / "pipelines" / "web.yaml", tmp_path / f"w{workers}",
                                         [f"workers={workers}", "write.shard_size=8", "steps.perplexity.max_tokens=16"])
        manifest = build(recipe, data, show_progress=False)
        assert_accounted(tmp_path / f"w{workers}", manifest)
        assert manifest["counts"]["rejected"] > 50 and manifest["schema"] == "DOCUMENT"
    assert len(shard_paths(tmp_path / "w1")) > 1
    metas = [json.loads(meta) for meta in read_shards(tmp_path / "w1").column("meta").to_pylist()]
    assert all("perplexity" in meta and "quality_classifier" in meta for meta in metas)  # compared byte for byte
    assert_same_files(tmp_path / "w1", tmp_path / "w2", "shards")
    assert_same_files(tmp_path / "w1", tmp_path / "w2", "rejected")


def test_shards_load_with_datasets_and_example_shards_pass_through(tmp_path):
    import datasets

    examples = examples_table([{"id": f"e{i}", "source": "test", "meta": {"n": i},
                                "messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                                             {"role": "assistant", "content": str(2 * i)}]} for i in range(30)])
    write_table(examples.slice(0, 10), tmp_path / "in" / "a.arrow")
    write_table(examples.slice(10), tmp_path / "in" / "b.arrow")
    recipe = load_recipe(None, data={"read": {"format": "arrow", "paths": [str(tmp_path / "in" / "*.arrow")]},
                                     "write": {"output": str(tmp_path / "out"), "shard_size": 7}})
    manifest = build(recipe, show_progress=False)
    assert manifest["schema"] == "EXAMPLE" and manifest["counts"]["written"] == 30
    out = read_shards(tmp_path / "out")
    assert out.schema == EXAMPLE_SCHEMA and out.equals(examples)

    loaded = datasets.load_dataset("arrow", data_files=[str(p) for p in shard_paths(tmp_path / "out")],
                                   split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == 30 and loaded[0]["messages"][1] == {"role": "assistant", "content": "0"}


def test_code_shards_load_with_datasets(tmp_path):
    import datasets

    recipe, data = recipe_on_samples(REPO / "pipelines" / "code.yaml", tmp_path / "out", ["steps=[]"])
    manifest = build(recipe, data, show_progress=False)
    loaded = datasets.load_dataset("arrow", data_files=str(tmp_path / "out" / "shards" / "*.arrow"), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == manifest["counts"]["written"] > 100
    assert set(loaded.column_names) == {"id", "text", "source", "url_or_path", "meta"}
    assert_accounted(tmp_path / "out", manifest)


def test_unreadable_input_is_counted_and_fingerprinted_not_fatal(tmp_path, docstrings):
    (path,) = write_docs(tmp_path / "in", docstrings, files=1, per_file=20)
    os.symlink(tmp_path / "in" / "deleted.jsonl", tmp_path / "in" / "link.jsonl")  # dangling, matched by the glob
    recipe = load_recipe(None, data={"read": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*.jsonl")]},
                                     "write": {"output": str(tmp_path / "out")}})
    manifest = build(recipe, show_progress=False)
    assert manifest_drops(manifest) == {("read", "unreadable_file"): 1}
    assert manifest["counts"]["written"] == 20
    assert_accounted(tmp_path / "out", manifest)
    fingerprints = {Path(f["path"]).name: f for f in manifest["inputs"]}
    assert "error" in fingerprints["link.jsonl"] and fingerprints["part-0.jsonl"]["bytes"] == path.stat().st_size


def test_a_changed_recipe_starts_over_instead_of_reusing_stale_units(tmp_path, docstrings):
    write_docs(tmp_path / "in", docstrings, files=3, per_file=40)

    def run(min_words: int, output: Path) -> dict:
        recipe = load_recipe(None, data={"read": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*.jsonl")]},
                                         "steps": [{"gopher_quality": {"min_doc_words": min_words}}],
                                         "write": {"output": str(output)}})
        return build(recipe, show_progress=False)

    strict_run = run(60, tmp_path / "out")["counts"]
    loose = run(20, tmp_path / "out")["counts"]  # same folder, different parameters
    assert loose == run(20, tmp_path / "fresh")["counts"] and loose["written"] > strict_run["written"]
    assert_same_files(tmp_path / "out", tmp_path / "fresh", "shards")
