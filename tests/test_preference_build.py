"""PREFERENCE rows through `instruct build` (preference JSONL reader, our own shards passed through,
exact + MinHash dedup on prompt + chosen, decontamination, PII in every message) and `instruct export --format trl`."""
from __future__ import annotations

import json
import subprocess
import sys

from instruct.io.shards import read_shards
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.preferences import to_preferences
from instruct.schema import load_meta

LONG = ("Photosynthesis turns light water and carbon dioxide into sugar and oxygen inside the chloroplasts of "
        "green plant cells during the day")


def _records() -> list[str]:
    records = [
        {"prompt": "How do plants make food?", "chosen": LONG + ".", "rejected": "They eat soil."},
        # same prompt + chosen, another rejected answer: an exact duplicate
        {"prompt": "How do plants make food?", "chosen": LONG + ".", "rejected": "Magic."},
        # one word changed in a long answer: a near duplicate
        {"prompt": "How do plants make food?", "chosen": LONG + " mostly.", "rejected": "No idea."},
        # PII in prompt, chosen and rejected
        {"prompt": [{"role": "user", "content": "Write to jane.doe@example.com about the meeting"}],
         "chosen": [{"role": "assistant", "content": "Sure, I will email jane.doe@example.com today."}],
         "rejected": [{"role": "assistant", "content": "Call 192.168.10.24 instead."}]},
        # an evaluation item: contaminated
        {"prompt": "Name the largest planet of the solar system and its most famous storm",
         "chosen": "Jupiter, and its Great Red Spot.", "rejected": "Mars."},
        # UltraFeedback: 3 completions, one tie -> 2 pairs + 1 counted tie
        {"instruction": "Give a synonym of happy", "completions": [
            {"response": "joyful", "overall_score": 9}, {"response": "sad", "overall_score": 2},
            {"response": "glad", "overall_score": 9}]},
    ]
    return [json.dumps(r) for r in records] + ['{"prompt": "only a prompt"}']


def test_preference_jsonl_builds_with_dedup_decontamination_and_pii(tmp_path):
    source = tmp_path / "prefs.jsonl"
    source.write_text("\n".join(_records()) + "\n")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"text": "Name the largest planet of the solar system and its most famous storm"})
                     + "\n")
    data = {"read": {"format": "preference", "paths": [str(source)]},
            "steps": [{"exact_dedup": {}}, {"minhash_dedup": {"threshold": 0.7}},
                      {"decontaminate": {"eval_sets": [str(evals)], "ngram": 5}}, {"pii": {}}],
            "write": {"output": str(tmp_path / "out")}}
    manifest = build(load_recipe(None, data=data), data, show_progress=False)
    rows = read_shards(tmp_path / "out").to_pylist()
    assert manifest["schema"] == "PREFERENCE"
    assert set(rows[0]) == {"id", "prompt", "chosen", "rejected", "source", "meta"}
    steps = {s["step"]: s for s in manifest["counts"]["steps"]}
    assert steps["pii"]["counters"] == {"EMAIL": 2, "IP_ADDRESS": 1}
    assert steps["read"]["dropped"] == {"not_a_preference": 1, "preference_tie": 1}
    assert sum(steps["exact_dedup"]["dropped"].values()) == 1
    assert sum(steps["minhash_dedup"]["dropped"].values()) == 1
    assert sum(steps["decontaminate"]["dropped"].values()) == 1
    assert len(rows) == 4  # the first plants pair, the PII pair, two UltraFeedback pairs
    plants = [r for r in rows if r["prompt"][0]["content"] == "How do plants make food?"]
    assert len(plants) == 1 and plants[0]["rejected"][0]["content"] == "They eat soil."  # the first one kept
    pii = next(r for r in rows if "meeting" in r["prompt"][0]["content"])
    text = json.dumps([pii["prompt"], pii["chosen"], pii["rejected"]])
    assert "jane.doe@example.com" not in text and "192.168.10.24" not in text
    assert all(r["chosen"][0]["content"] != "sad" for r in rows)
    uf = sorted((r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows if "happy" in r["prompt"][0]["content"])
    assert uf == [("glad", "sad"), ("joyful", "sad")]
    assert load_meta(next(r["meta"] for r in rows if r["chosen"][0]["content"] == "glad"))["margin"] == 7.0


def test_preference_shards_pass_through_and_export_round_trips(tmp_path):
    source = tmp_path / "prefs.jsonl"
    source.write_text("\n".join(_records()[:-1]) + "\n")
    first = {"read": {"format": "preference", "paths": [str(source)]}, "steps": [{"pii": {}}],
             "write": {"output": str(tmp_path / "a")}}
    build(load_recipe(None, data=first), first, show_progress=False)
    again = {"read": {"format": "arrow", "paths": [str(tmp_path / "a" / "shards" / "*.arrow")]},
             "steps": [{"exact_dedup": {}}], "write": {"output": str(tmp_path / "b")}}
    manifest = build(load_recipe(None, data=again), again, show_progress=False)
    built, rebuilt = read_shards(tmp_path / "a").to_pylist(), read_shards(tmp_path / "b").to_pylist()
    assert manifest["schema"] == "PREFERENCE" and manifest["counts"]["steps"][0]["dropped"] == {}
    assert len(rebuilt) == len(built) - 1 and {r["id"] for r in rebuilt} < {r["id"] for r in built}
    exported = tmp_path / "trl.jsonl"
    result = subprocess.run([sys.executable, "-m", "instruct", "export", str(tmp_path / "b"), "--format", "trl",
                             "--output", str(exported)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    back = [p for line in exported.read_text().splitlines() for p in to_preferences(json.loads(line))]
    key = lambda r: (r["prompt"], r["chosen"], r["rejected"])  # noqa: E731
    assert [key(p) for p in back] == [key(r) for r in rebuilt]
    wrong = subprocess.run([sys.executable, "-m", "instruct", "export", str(tmp_path / "b"), "--format", "openai",
                            "--output", str(tmp_path / "x.jsonl")], capture_output=True, text=True)
    assert wrong.returncode != 0 and "holds PREFERENCE rows" in wrong.stderr and "Traceback" not in wrong.stderr
