"""A plain tune and eval print no third-party noise; plots count whole steps."""
from __future__ import annotations

import subprocess
import sys

import pytest
from test_tune_support import tiny_data, tiny_model  # noqa: F401  (fixtures)

from instruct.tune.report import loss_figure

NOISE = ("kernels", "FutureWarning", "DeprecationWarning", "deprecated")


@pytest.mark.slow  # two CLI processes (torch + transformers imports)
def test_tune_then_eval_print_no_warnings(tiny_model, tiny_data, tmp_path):  # noqa: F811
    tune = subprocess.run([sys.executable, "-m", "instruct", "tune", "--data", str(tiny_data), "--output",
                           str(tmp_path / "adapter"), "--max-steps", "2", f"model={tiny_model}", "data.max_length=256",
                           "train.micro_batch_tokens=512", "train.threads=1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert tune.returncode == 0, tune.stderr
    evaluated = subprocess.run([sys.executable, "-m", "instruct", "eval", "--data", str(tiny_data), "--adapter",
                                str(tmp_path / "adapter"), "--output", str(tmp_path / "eval"), "limit=4"],
                               capture_output=True, text=True, timeout=300, check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    for run in (tune, evaluated):
        noisy = [line for line in run.stderr.splitlines() if any(word in line for word in NOISE)]
        assert noisy == [], noisy


def test_loss_plot_ticks_are_whole_steps():
    records = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}]
    figure = loss_figure(records)
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
