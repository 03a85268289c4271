"""`pair_judge` through the real openai client against a real local server; cached and resumable."""
from __future__ import annotations

import inspect
import json
import re

import pytest

from instruct.config import ConfigError
from instruct.pipeline.registry import make_step
from instruct.schema import examples_table
from instruct.serve.engines import FakeEngine, Generation
from instruct.serve.server import serve_in_thread


class GradingEngine(FakeEngine):
    """Answers a Deita complexity prompt by the query's length and a quality prompt by the answer's,
    the way a grader that liked long texts would; counts the requests it sees."""

    seen = 0

    def generate(self, job) -> Generation:
        GradingEngine.seen += 1
        text = job.text()
        if "##Complexity:" in text:
            query = re.search(r"##Query: (.*)\n##Complexity", text, re.S).group(1)
            grade = min(6, 1 + len(query.split()) // 4)
        else:
            answer = re.search(r"#Response#:\n(.*)\n##Quality", text, re.S).group(1)
            grade = min(6, 1 + len(answer.split()) // 20)
        return Generation(f"Score: {grade}", "stop", len(text.split()), 2)


def rows() -> list[dict]:
    return [{"id": name, "messages": [{"role": "user", "content": question},
                                      {"role": "assistant", "content": inspect.getdoc(obj)}], "source": "t", "meta": {}}
            for name, question, obj in [("dumps", "What does json.dumps do?", json.dumps),
                                        ("loads", "Explain in detail what json.loads does with each of its keyword "
                                                  "arguments and when it raises an error.", json.loads),
                                        ("short", "What is JSONDecodeError?", json.JSONDecodeError)]]


def test_scores_go_to_meta_thresholds_drop_and_a_rerun_is_answered_from_cache(tmp_path):
    with serve_in_thread(GradingEngine()) as server:
        params = {"base_url": server.base_url, "model": "fake", "cache": str(tmp_path / "judge.jsonl")}
        GradingEngine.seen = 0
        out = make_step("pair_judge", {**params, "min_complexity": 3}).ensure_setup().apply(examples_table(rows()))
        assert GradingEngine.seen == 6  # two questions per pair
        scores = {row["id"]: json.loads(row["meta"])["pair_judge"] for row in out.table.to_pylist()}
        assert scores["loads"]["complexity"] > scores["dumps"]["complexity"]
        assert all(1 <= s["quality"] <= 6 for s in scores.values())
        assert out.reasons == ["low_complexity", None, "low_complexity"]
        assert out.counters["scored"] == 3
        again = make_step("pair_judge", params).ensure_setup().apply(examples_table(rows()))
        assert GradingEngine.seen == 6  # resumed from the cache: no request sent twice
        assert again.reasons == [None, None, None]


def test_no_endpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="no endpoint"):
        make_step("pair_judge", {"cache": str(tmp_path / "c.jsonl")}).ensure_setup().apply(examples_table(rows()))
