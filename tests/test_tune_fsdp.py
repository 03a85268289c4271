"""FSDP (train.fsdp) on CPU with gloo, 2 processes under torchrun, on a tiny random Llama: the same training
as one process, exact resume after SIGKILL from sharded checkpoints, resume across process counts."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import load_file
from test_tune_support import started, tiny_config, tiny_data, tiny_model  # noqa: F401  (fixtures)

from instruct.config import ConfigError
from instruct.tune import load_config, train

TESTS = Path(__file__).resolve().parent
# fp32: under bf16 autocast one process and two differ by ~1e-3 (as for DDP); dropout off: the two
# processes draw from their own RNGs, so one process cannot reproduce their masks
RUN = ["train.max_steps=6", "train.save_every=3", "train.eval_every=3", "train.keep_checkpoints=3",
       "train.dtype=fp32", "method.dropout=0.0"]
FSDP = [*RUN, "train.fsdp=true"]
TWO = ["train.grad_accum=1"]  # 1 x 2 processes: the step of one process with tiny_config's grad_accum=2
LOSS_TOLERANCE = 1e-5  # one process and two sum gradients in different orders (fp32)
DRIVER = """import os, signal, sys
sys.path.insert(0, {tests!r})
from test_tune_support import tiny_config
from instruct.tune import train
model, data, output, kill_at, *overrides = sys.argv[1:]
def die(record):
    if record["step"] == int(kill_at) and os.environ["RANK"] == "0":
        os.kill(os.getpid(), signal.SIGKILL)
train(tiny_config(model, data, output, *overrides), on_step=die, show_progress=False)
"""


def start_torchrun(model: Path, data: Path, output: Path, overrides: list[str],
                   kill_at: int = 0) -> Callable[[], str]:
    """2 processes (gloo) under torchrun on a free port; rank 0 SIGKILLs itself after step `kill_at`.
    Returns the wait for it (its stderr), so the caller may work meanwhile."""
    script = output.parent / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS)))
    finished = started([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(model), str(data), str(output), str(kill_at), *overrides],
                       env={**os.environ, "INSTRUCT_NO_PROGRESS": "1"})

    def wait() -> str:
        process = finished()
        assert (process.returncode != 0) == bool(kill_at), process.stderr[-3000:]
        return process.stderr

    return wait


def torchrun(model: Path, data: Path, output: Path, overrides: list[str], kill_at: int = 0) -> str:
    return start_torchrun(model, data, output, overrides, kill_at)()


def losses(output: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture(scope="module")
def two_process_runs(tiny_model, tiny_data, tmp_path_factory):  # noqa: F811
    """method -> the output folder of an uninterrupted 2-process FSDP run (made once per method), and what
    `alongside` returned: it runs here while the first run of that method trains."""
    made: dict[str, Path] = {}

    def run(method: str, alongside: Callable[[], Any] = lambda: None) -> tuple[Path, Any]:
        if method in made:
            return made[method], alongside()
        output = tmp_path_factory.mktemp(f"fsdp-{method}") / "out"
        wait = start_torchrun(tiny_model, tiny_data, output, [*FSDP, *TWO, f"method.name={method}"])
        try:
            value = alongside()
        finally:
            wait()
        made[method] = output
        return output, value

    return run


@pytest.mark.slow
@pytest.mark.parametrize("method, weights", [("lora", "adapter_model.safetensors"), ("full", "model.safetensors")])
def test_fsdp_on_two_processes_matches_one_process(method, weights, two_process_runs, tiny_model, tiny_data,  # noqa: F811
                                                   tmp_path):
    sharded, one = two_process_runs(method, lambda: train(tiny_config(tiny_model, tiny_data, tmp_path / "one", *RUN,
                                                                      f"method.name={method}"), show_progress=False))
    assert losses(sharded) == pytest.approx(losses(Path(one.output)), abs=LOSS_TOLERANCE)
    result = json.loads((sharded / "result.json").read_text())
    assert result["eval_loss"] == pytest.approx(one.eval_loss, abs=LOSS_TOLERANCE)
    assert result["trainable_parameters"] == one.trainable_parameters
    # checkpoints are sharded (one DCP shard and one RNG/scheduler file per process) ...
    checkpoint = sharded / "checkpoints" / "step-0000006"
    assert sorted(p.name for p in (checkpoint / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert (checkpoint / "rank-00001.pt").is_file() and not (checkpoint / "trainable.safetensors").exists()
    # ... the result is a plain folder with the weights one process writes
    mine, theirs = load_file(sharded / weights), load_file(Path(one.output) / weights)
    assert sorted(mine) == sorted(theirs)
    for name, tensor in theirs.items():
        assert torch.allclose(mine[name], tensor, atol=2e-4), name  # a few Adam steps of lr 3e-3


@pytest.mark.slow
def test_resume_after_sigkill_from_sharded_checkpoint_is_exact(tiny_model, tiny_data, tmp_path):  # noqa: F811
    """Dropout on: each process's RNG is restored from its own rank file. The uninterrupted reference is the
    killed run's own log up to the kill (steps 1-5, trained straight through): no third torchrun."""
    overrides = [*FSDP, *TWO, "method.dropout=0.1"]
    killed = tmp_path / "killed" / "out"
    killed.parent.mkdir()
    assert re.search(rf"exitcode\s*:\s*-{signal.SIGKILL.value}\b", torchrun(tiny_model, tiny_data, killed, overrides,
                                                                           kill_at=5))
    assert not (killed / "adapter_model.safetensors").exists()
    assert sorted(p.name for p in (killed / "checkpoints").glob("step-*")) == ["step-0000003"]
    expected = losses(killed)
    assert sorted(expected) == list(range(1, 6))  # logged before the kill
    torchrun(tiny_model, tiny_data, killed, overrides)
    assert json.loads((killed / "result.json").read_text())["resumed_from"] == 3
    records = [json.loads(line) for line in (killed / "train_log.jsonl").read_text().splitlines()]
    resumed = losses(killed)
    # steps 4-5 of the killed run were dropped and redone (once each), and step 6 trained
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 7))
    for step in range(1, 6):
        assert abs(expected[step] - resumed[step]) < 1e-6, step


def without_last_checkpoint(source: Path, target: Path) -> Path:
    """A copy of a finished run as if it had died after its step-3 checkpoint."""
    shutil.copytree(source, target)
    shutil.rmtree(target / "checkpoints" / "step-0000006")
    return target


@pytest.mark.slow
def test_resume_on_one_process_from_two_and_on_two_from_one(two_process_runs, tiny_model, tiny_data,  # noqa: F811
                                                            tmp_path):
    two, _ = two_process_runs("lora")
    resumed_on_one = train(tiny_config(tiny_model, tiny_data, without_last_checkpoint(two, tmp_path / "2to1"), *FSDP),
                           show_progress=False)
    assert resumed_on_one.resumed_from == 3
    assert losses(Path(resumed_on_one.output)) == pytest.approx(losses(two), abs=LOSS_TOLERANCE)

    one = train(tiny_config(tiny_model, tiny_data, tmp_path / "one" / "out", *FSDP), show_progress=False)
    assert (Path(one.output) / "checkpoints" / "step-0000006" / "dcp").is_dir()  # sharded format, one shard
    resumed_on_two = without_last_checkpoint(Path(one.output), tmp_path / "1to2" / "out")
    torchrun(tiny_model, tiny_data, resumed_on_two, [*FSDP, *TWO])
    assert json.loads((resumed_on_two / "result.json").read_text())["resumed_from"] == 3
    assert losses(resumed_on_two) == pytest.approx(losses(Path(one.output)), abs=LOSS_TOLERANCE)


def test_steps_that_do_not_split_over_the_processes_are_refused(tmp_path):
    from instruct.tune.run_plan import read_saved_plan

    (tmp_path / "plan.json").write_text(json.dumps({"world": 1, "resolved": {"grad_accum": 3}}))
    assert read_saved_plan(tmp_path, 3)["grad_accum"] == 1
    with pytest.raises(ConfigError, match="3 micro-batches .* cannot be split over 2 processes"):
        read_saved_plan(tmp_path, 2)


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {Path.cwd() / 'pwned'}",))


def test_sharded_checkpoint_metadata_that_would_run_code_is_refused(tmp_path, monkeypatch):
    """DCP's metadata is a pickle: only its own records load; a planted callable is refused, never called."""
    from instruct.tune.sharded_checkpoint import load_sharded_checkpoint, save_sharded_checkpoint

    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    saved = save_sharded_checkpoint(tmp_path, 1, model, optimizer, scheduler, {}, keep=2, rank=0)
    with torch.no_grad():
        model.weight.zero_()
    assert load_sharded_checkpoint(saved, model, optimizer, scheduler, rank=0)["step"] == 1
    assert model.weight.abs().sum() > 0  # the saved weights came back

    (saved / "dcp" / ".metadata").write_bytes(pickle.dumps(_RunsCode()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\.metadata: refused to load: it names \w+\.system"):
        load_sharded_checkpoint(saved, model, optimizer, scheduler, rank=0)
    assert not (tmp_path / "pwned").exists()


def test_methods_fsdp_cannot_shard_are_refused_up_front():
    with pytest.raises(ConfigError, match="train.fsdp: method qlora is not supported"):
        load_config(None, ["train.fsdp=true", "method.name=qlora"], {"data.path": "x", "output": "y"})
    assert load_config(None, ["train.fsdp.cpu_offload=true"], {"data.path": "x", "output": "y"}).train.fsdp.cpu_offload

