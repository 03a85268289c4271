"""`instruct synth` end to end against `instruct serve` (fake engine) in its own process:
SIGKILL mid-run then resume (no answered request sent twice, same output), Evol-Instruct, key redaction."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instruct.io.shards import read_shards
from instruct.serve.process import server_process

KEY = "sk-e2e-SECRET-abcdef0123456789"


def synth_command(output: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "instruct", "synth", "--method", "self-instruct", "--num", "40",
            "--output", str(output), "--base-url", url, "--model", "fake", "--concurrency", "4",
            "self_instruct.request_batch_size=6", "progress=false", *extra]


def answered(log: Path) -> list[str]:
    return [e["body"] for e in map(json.loads, log.read_text().splitlines()) if e["status"] == 200]


def cache_lines(output: Path) -> int:
    path = output / "cache" / "requests.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_sigkill_then_resume_sends_nothing_twice_and_matches_an_uninterrupted_run(tmp_path):
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    log1, log2, log3 = tmp_path / "run1.jsonl", tmp_path / "run2.jsonl", tmp_path / "clean.jsonl"
    hold = 30
    # run 1: the server answers `hold` requests, then holds every later one; we kill the client mid-run
    with server_process("--engine", "fake", "--fake-latency", "0.01", "--request-log", str(log1),
                        "--hold-after", str(hold)) as url:
        process = subprocess.Popen(synth_command(killed_out, url), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for(lambda: log1.exists() and len(answered(log1)) >= hold and cache_lines(killed_out) >= hold)
        time.sleep(0.3)  # the client now waits on requests the server holds
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    assert not (killed_out / "manifest.json").exists()
    # run 2: same command, fresh server: completes from the cache plus new requests only
    with server_process("--engine", "fake", "--fake-latency", "0.01", "--request-log", str(log2)) as url:
        subprocess.run(synth_command(killed_out, url), check=True, capture_output=True)
    first, second = answered(log1), answered(log2)
    assert len(first) == hold and len(set(second)) == len(second)
    assert not set(first) & set(second), "a request answered before the kill was sent again"
    manifest = json.loads((killed_out / "manifest.json").read_text())
    assert manifest["usage"]["cache_hits"] == hold
    # an uninterrupted run sends exactly the union of both runs' requests and writes the same rows
    with server_process("--engine", "fake", "--fake-latency", "0.01", "--request-log", str(log3)) as url:
        subprocess.run(synth_command(clean_out, url), check=True, capture_output=True)
    assert sorted(answered(log3)) == sorted(first + second)
    resumed, clean = read_shards(killed_out).to_pylist(), read_shards(clean_out).to_pylist()
    assert resumed == clean and len(clean) >= 40
    assert json.loads((clean_out / "manifest.json").read_text())["counts"] == manifest["counts"]


@pytest.fixture(scope="module")
def fake_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "log.jsonl"
    with server_process("--engine", "fake", "--request-log", str(log)) as url:
        yield url


def test_self_then_evol_instruct_and_the_key_never_leaks(tmp_path, fake_url):
    env = {**os.environ, "OPENAI_API_KEY": KEY, "INSTRUCT_LOG_LEVEL": "DEBUG"}
    first = subprocess.run(synth_command(tmp_path / "si", fake_url), env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    evol = subprocess.run([sys.executable, "-m", "instruct", "synth", "--method", "evol-instruct",
                           "--input", str(tmp_path / "si"), "--num", "12", "--output", str(tmp_path / "evol"),
                           "--base-url", fake_url, "--concurrency", "4", "evol_instruct.rounds=2",
                           "progress=false"], env=env, capture_output=True, text=True)
    assert evol.returncode == 0, evol.stderr[-2000:]
    rows = read_shards(tmp_path / "evol").to_pylist()
    metas = [json.loads(r["meta"]) for r in rows]
    assert rows and {m["method"] for m in metas} == {"evol-instruct"}
    assert {m["round"] for m in metas} == {1, 2} and all(
        1 <= len(m["lineage"]) <= m["round"] and m["lineage"][-1] == m["operation"] for m in metas)
    assert {m["kind"] for m in metas} <= {"in-depth", "in-breadth"} and metas[0]["model"] == "fake"
    manifest = json.loads((tmp_path / "evol" / "manifest.json").read_text())
    stages = manifest["counts"]["stages"]
    assert stages["input"]["kept"] == 12 and stages["evolution"]["kept"] == len(rows)
    assert stages["evolution"].get("no_information_gain", 0) > 0  # the fake judge says Equal a quarter of the time
    # the key reached the server (the client authenticates) but no output, log or cache line holds it
    assert "DEBUG" in first.stderr  # logging was really on
    texts = [first.stdout, first.stderr, evol.stdout, evol.stderr]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*.arrow")]
    assert not any(KEY in text for text in texts)
    assert manifest["config"]["client"]["api_key"] == "<set>"


def test_bad_seed_task_line_is_a_one_line_error(tmp_path, fake_url):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "Name a fruit", "instances": [], "is_classification": false}\n'
                     '{"instruction": "Name a colour", "instances": "oops"}\n')
    result = subprocess.run([sys.executable, "-m", "instruct", "synth", "--seed-tasks", str(seeds), "--num", "2",
                             "--output", str(tmp_path / "out"), "--base-url", fake_url],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert f"{seeds}:2: 'instances' must be a list" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name, overrides", [("synth_self_instruct.yaml", []), ("synth_evol_instruct.yaml", ["input=[x]"]),
                                             ("synth_backtranslate.yaml", ["documents=[x]"]),
                                             ("synth_preference.yaml", ["instructions=[x]"])])
def test_shipped_recipes_load(name, overrides):
    from instruct.config import load_yaml
    from instruct.synth.run import load_synth_recipe

    path = Path(__file__).resolve().parents[1] / "pipelines" / name
    recipe = load_synth_recipe(load_yaml(path), overrides, where=str(path))
    assert recipe.method == name.split("_", 1)[1].removesuffix(".yaml").replace("_", "-")


def test_param_overrides_update_the_papers_defaults():
    from instruct.synth.run import load_synth_recipe

    overrides = ["self_instruct.bootstrap_params.max_tokens=12", "self_instruct.bootstrap_params.stop=null"]
    recipe = load_synth_recipe({"self_instruct": {"bootstrap_params": {"top_p": 0.9}}}, overrides)
    assert recipe.self_instruct.bootstrap_params == {"max_tokens": 12, "temperature": 0.7, "top_p": 0.9,
                                                     "frequency_penalty": 0, "presence_penalty": 2, "stop": None}
