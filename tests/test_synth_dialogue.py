"""`instruct synth --method dialogue` against a real local server (fake engine, hand-built user turns) through the
real openai client: each stop rule (turn limit, goal met, repetition), the too-short and novelty filters, and
rows whose every assistant turn is trained."""
from __future__ import annotations

import json
from pathlib import Path

from instruct.io.shards import read_shards
from instruct.serve.engines import FakeEngine, ReplyRule
from instruct.serve.server import serve_in_thread
from instruct.synth.run import load_synth_recipe, run_synth

# The user model's requests start with its persona prompt; `min_messages` counts the kick-off plus earlier turns
# (1, 3, 5, ...). Assistant turns are the fake engine's own replies (random, deterministic per prompt).
USER = "help about {}\\."
RULES = [
    ReplyRule(USER.format("alpha"), ["[DONE]"], min_messages=5),  # goal met after two answers
    ReplyRule(USER.format("alpha"), ["Thanks. Which tools would a complete beginner need first?"], min_messages=3),
    ReplyRule(USER.format("alpha"), ["Hello, I want to learn the basics of woodworking at home."]),
    ReplyRule(USER.format("beta"), ["Could you explain the beta release again?"], min_messages=3),
    ReplyRule(USER.format("beta"), ["Could you explain the beta release again, please?"]),  # repeated next turn
    ReplyRule(USER.format("delta"), ["[DONE]"]),  # goal 'met' before any answer: too short
]


def test_stop_rules_novelty_and_every_assistant_turn_trained(tmp_path: Path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("alpha\nbeta\ngamma\ndelta\nalpha\n\n")  # gamma: no rule, runs to the turn limit
    with serve_in_thread(FakeEngine(replies=RULES)) as server:
        recipe = load_synth_recipe({"method": "dialogue", "seeds": str(seeds), "output": str(tmp_path / "out"),
                                    "progress": False, "client": {"base_url": server.base_url},
                                    "dialogue": {"turns": 3}}, [])
        manifest = run_synth(recipe)
    counts = manifest["counts"]
    assert counts["outcomes"]["stop"] == {"goal_met": 3, "repetition": 1, "turn_limit": 1}
    assert counts["stages"]["dialogue"] == {"kept": 3, "too_short": 1, "not_novel": 1}  # the second alpha
    assert counts["outcomes"]["assistant_turns"] == {"0": 1, "1": 1, "2": 2, "3": 1}
    rows = {json.loads(r["meta"])["goal"].split("about ")[1].rstrip("."): r
            for r in read_shards(tmp_path / "out").to_pylist()}
    assert sorted(rows) == ["alpha", "beta", "gamma"]
    turns = {topic: [m["role"] for m in row["messages"]] for topic, row in rows.items()}
    assert turns == {"alpha": ["user", "assistant"] * 2, "beta": ["user", "assistant"],
                     "gamma": ["user", "assistant"] * 3}
    assert rows["alpha"]["messages"][2]["content"].startswith("Thanks. Which tools")
    assert "[DONE]" not in json.dumps(rows["alpha"]["messages"])
    assert {json.loads(r["meta"])["stop"] for r in rows.values()} == {"goal_met", "repetition", "turn_limit"}
    # instruct tune trains every assistant turn of such a row, and nothing else
    from transformers import AutoTokenizer

    from instruct.models import resolve_model
    from instruct.tune.data import tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    ids, labels = tokenize_example(tokenizer, rows["gamma"]["messages"])
    trained = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
    for message in rows["gamma"]["messages"]:
        assert (message["content"] in trained) == (message["role"] == "assistant")


def test_document_seeds_and_a_bad_seed_line(tmp_path: Path):
    from instruct.io.readers.base import InputError
    from instruct.synth.dialogue import load_seeds

    good = tmp_path / "seeds.jsonl"
    good.write_text('"knitting"\n{"id": "d1", "text": "A long document about tides."}\n{"topic": "chess"}\n')
    seeds = load_seeds(str(good))
    assert [(s.topic, s.document) for s in seeds] == [("knitting", None), (None, "A long document about tides."),
                                                       ("chess", None)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"title": "no topic"}\n')
    try:
        load_seeds(str(bad))
    except InputError as error:
        assert str(error).startswith(f"{bad}:2: ")
    else:
        raise AssertionError("a seed without topic or text must be an error")


def test_cli_seeds_and_turns_flags_imply_the_dialogue_method(tmp_path: Path):
    import subprocess
    import sys

    from instruct.serve.process import server_process

    seeds = tmp_path / "topics.txt"
    seeds.write_text("baking bread\nlearning chess\n")
    rules = tmp_path / "rules.json"  # the fake engine ignores the persona prompt: script each user's turns
    rules.write_text(json.dumps([
        {"pattern": USER.format(topic), "min_messages": 3, "reply": second} for topic, second in
        (("baking bread", "And how long should the dough rest?"), ("learning chess", "Which opening suits me?"))] + [
        {"pattern": USER.format(topic), "reply": first} for topic, first in
        (("baking bread", "I want to bake my first loaf."), ("learning chess", "Teach me how the knight moves."))]))
    with server_process("--engine", "fake", "--fake-replies", str(rules)) as url:
        result = subprocess.run([sys.executable, "-m", "instruct", "synth", "--seeds", str(seeds), "--turns", "2",
                                 "--output", str(tmp_path / "out"), "--base-url", url, "progress=false"],
                                capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("dialogue: wrote 2 examples")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["outcomes"]["stop"] == {"turn_limit": 2}
    assert all(len(r["messages"]) == 4 for r in read_shards(tmp_path / "out").to_pylist())
