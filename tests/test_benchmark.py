"""`instruct eval --benchmark lm-eval:unicode_category`: the harness path on the task built offline."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.tiny_models import save_random_lora, save_tiny_llama

pytest.importorskip("lm_eval")


@pytest.mark.slow
def test_lm_eval_local_task_base_vs_adapter(tmp_path):
    from instruct.evaluate.benchmark import format_benchmark, run_benchmark

    model = save_tiny_llama(tmp_path / "tiny", seed=3, tied=False)
    adapter = save_random_lora(model, tmp_path / "lora", seed=4)
    report = run_benchmark("lm-eval:unicode_category", tmp_path / "out", str(model), str(adapter), limit=15)
    assert json.loads((tmp_path / "out" / "benchmark.json").read_text()) == report
    task = report["tasks"]["unicode_category"]
    assert task["examples"] == 15
    for variant in ("base", "adapter"):
        acc = task["models"][variant]["acc"]
        assert acc["n"] == 15 and 0 <= acc["ci95_low"] <= acc["mean"] <= acc["ci95_high"] <= 1
    delta = task["delta"]["acc"]  # paired per item, as in `instruct eval --data`
    assert delta["n"] == 15 and delta["ci95_low"] <= delta["mean"] <= delta["ci95_high"]
    table = format_benchmark(report)
    assert table.startswith("unicode_category") and "delta" in table and "acc_norm" in table


def test_benchmark_spec_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "instruct", "eval", "--benchmark", "hellaswag", "--output",
                             str(tmp_path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "expected lm-eval:TASK" in result.stderr and "Traceback" not in result.stderr
