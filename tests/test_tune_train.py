"""The training loop on a tiny random Llama: loss falls, exact resume after SIGKILL, adapters round-trip,
every method and recipe works."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from test_tune_support import (  # noqa: F401  (fixtures)
    make_tiny_model,
    run_together,
    start_until_killed,
    tiny_config,
    tiny_data,
    tiny_model,
)

from instruct.tune import load_config, load_model, train
from instruct.tune.config import METHODS, VIRTUAL_TOKEN_METHODS
from instruct.tune.methods import apply_method, load_base

ROOT = Path(__file__).resolve().parents[1]


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_loss_falls_and_outputs_are_written(tiny_model, tiny_data, tmp_path):
    result = train(tiny_config(tiny_model, tiny_data, tmp_path / "out", "train.max_steps=12"), show_progress=False)
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])
    assert result.eval_loss < result.initial_eval_loss
    out = Path(result.output)
    for name in ("adapter_config.json", "adapter_model.safetensors", "train_log.jsonl", "loss.png", "result.json",
                 "tune_config.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    assert result.packing and result.template == "tokenizer" and result.examples + result.eval_examples == 48


def test_resume_after_sigkill_is_exact(tiny_model, tiny_data, tmp_path):
    args = ["train.max_steps=10", "train.save_every=4", "train.eval_every=100"]
    killed = tmp_path / "killed"
    wait = start_until_killed(tiny_model, tiny_data, killed, args, kill_at_step=6)
    straight = train(tiny_config(tiny_model, tiny_data, tmp_path / "straight", *args), show_progress=False)
    wait()  # the child trained alongside the straight run
    assert not (killed / "adapter_model.safetensors").exists()

    resumed = train(tiny_config(tiny_model, tiny_data, killed, *args), show_progress=False)
    assert resumed.resumed_from == 4
    straight_losses = {r["step"]: r["loss"] for r in straight.log if "loss" in r}
    resumed_losses = {r["step"]: r["loss"] for r in resumed.log if "loss" in r}
    assert sorted(resumed_losses) == list(range(1, 11))  # steps 5-6 of the killed run were dropped and redone
    for step in range(1, 11):
        assert abs(straight_losses[step] - resumed_losses[step]) < 1e-6, step


def test_adapter_round_trip_through_peft(tiny_model, tiny_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = tiny_config(tiny_model, tiny_data, tmp_path / "out", "train.max_steps=3", "merge=true")
    result = train(config, show_progress=False)
    ids = torch.randint(0, 1000, (1, 20))
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output).eval()
    base = logits(AutoModelForCausalLM.from_pretrained(tiny_model).eval(), ids)
    tuned = logits(reloaded, ids)
    assert not torch.allclose(tuned, base, atol=1e-4)  # the adapter changed something
    model, tokenizer = load_model(adapter=result.output, dtype="fp32")  # the one loader for eval and serving
    assert torch.allclose(logits(model, ids), tuned, atol=1e-5)
    assert tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(result.merged).eval()
    assert torch.allclose(logits(merged, ids), tuned, atol=1e-4)


def test_lora_starts_as_the_base_model(tiny_model):
    model, _ = load_base(tiny_model)
    ids = torch.randint(0, 1000, (1, 16))
    before = logits(model.eval(), ids)
    config = load_config(None, ["method.name=lora", "method.target_modules=all-linear"],
                         {"data.path": "x", "output": "y"})
    adapted = apply_method(model, config.method).eval()
    assert torch.allclose(logits(adapted, ids), before, atol=1e-6)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "qlora"])
def test_every_method_trains_a_step(tmp_path_factory, tiny_data, method, tmp_path):
    model = make_tiny_model(tmp_path_factory.mktemp("biased"), bias=True) if method == "bitfit" else None
    model = model or make_tiny_model(tmp_path_factory.mktemp("plain"))
    config = tiny_config(model, tiny_data, tmp_path / "out", "train.max_steps=2", f"method.name={method}",
                         "method.num_virtual_tokens=4", "method.trainable_layers=1")
    result = train(config, show_progress=False)
    assert 0 < result.trainable_parameters < result.total_parameters or method == "full"
    assert all(r["grad_norm"] > 0 for r in result.log if "loss" in r)
    assert result.packing == (method not in VIRTUAL_TOKEN_METHODS)
    if method in ("full", "freeze", "bitfit"):
        assert (Path(result.output) / "config.json").is_file()
    else:
        load_model(adapter=result.output, dtype="fp32")


def test_bitfit_on_a_model_without_biases_says_what_to_do(tiny_model, tiny_data, tmp_path):
    from instruct.config import ConfigError

    with pytest.raises(ConfigError, match="include_norms"):
        train(tiny_config(tiny_model, tiny_data, tmp_path / "o", "method.name=bitfit"), show_progress=False)


def test_qlora_step_on_cpu_and_merge_dequantises(tiny_model, tiny_data, tmp_path):
    from transformers import AutoModelForCausalLM

    config = tiny_config(tiny_model, tiny_data, tmp_path / "q", "method.name=qlora", "train.max_steps=2",
                         "train.lr=1e-2", "merge=true")
    result = train(config, show_progress=False)
    assert all(r["grad_norm"] > 0 for r in result.log if "loss" in r)
    from peft import PeftModel

    quantized, _ = load_model(adapter=result.output, dtype="fp32")  # loads the base in 4-bit again
    assert any("4bit" in type(m).__name__ for m in quantized.modules())
    ids = torch.randint(0, 1000, (1, 12))
    merged = logits(AutoModelForCausalLM.from_pretrained(result.merged).eval(), ids)
    # the merge is exactly dequantised NF4 base + adapter: the function that was trained
    dequantized = load_base(tiny_model, quantize_4bit=True)[0].dequantize(dtype=torch.float32)
    assert torch.allclose(merged, logits(PeftModel.from_pretrained(dequantized, result.output).eval(), ids), atol=1e-5)
    # merging into the original fp32 weights instead would be far from what the 4-bit model computes
    unquantized, _ = load_model(adapter=result.output, dtype="fp32", quantize_4bit=False)
    four_bit = logits(quantized, ids)
    assert (merged - four_bit).abs().max() < 0.3 * (logits(unquantized, ids) - four_bit).abs().max()


def test_qlora_gradients_survive_an_eval_pass(tiny_model):
    """bitsandbytes repacks 4-bit weights for a CPU inference kernel without autograd on an eval forward;
    the run's held-out eval must not leave the training matmuls on that kernel."""
    from instruct.tune.config import MethodConfig

    def gradients(evaluate_first: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = apply_method(load_base(tiny_model, quantize_4bit=True)[0], MethodConfig(name="qlora", r=4))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # bnb repacks on bf16 CPUs
            model.eval()(input_ids=ids) if evaluate_first else None
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    ids = torch.randint(0, 1000, (1, 16))
    straight, after_eval = gradients(False), gradients(True)
    assert straight.keys() == after_eval.keys() and straight
    for name, grad in straight.items():
        assert torch.allclose(grad, after_eval[name], atol=1e-6), name


@pytest.mark.parametrize("recipe", sorted((ROOT / "trainer").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_and_validates(recipe):
    teacher = {"distill.teacher": "t"} if "distill:" in recipe.read_text() else {}
    config = load_config(recipe, ["train.lr=1e-5"], {"data.path": "d", "output": "o", "rl.prompts": "p",
                                                      "rl.reward": "m:f", **teacher})
    assert config.method.name in METHODS and config.train.lr == 1e-5
    assert {"lora.yaml", "qlora.yaml", "full.yaml"} <= {p.name for p in recipe.parent.glob("*.yaml")}


def test_every_method_has_a_shipped_recipe():
    shipped = {p.stem for p in (ROOT / "trainer").glob("*.yaml")}
    assert set(METHODS) <= shipped, sorted(set(METHODS) - shipped)
    for name in METHODS:  # and the recipe called after a method runs that method
        assert load_config(ROOT / "trainer" / f"{name}.yaml", [], {"data.path": "d", "output": "o"}).method.name == name


def test_cli_runs_a_recipe_with_overrides(tiny_model, tiny_data, tmp_path):
    from click.testing import CliRunner

    from instruct.cli import main

    out = tmp_path / "cli"
    args = ["tune", str(ROOT / "trainer" / "lora.yaml"), "--data", str(tiny_data), "--output", str(out),
            "--max-steps", "2", f"model={tiny_model}", "data.max_length=256", "train.micro_batch_tokens=512"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 0, run.output
    assert "adapter:" in run.output and (out / "adapter_model.safetensors").is_file()
    bad = CliRunner().invoke(main, args[:-1] + ["train.nope=1"])
    assert bad.exit_code != 0 and "nope" in bad.output


@pytest.mark.slow
def test_ddp_under_torchrun_matches_one_process(tiny_model, tiny_data, tmp_path):
    """2 processes x 1 micro-batch per step == 1 process x 2 micro-batches (gloo on CPU, same command).
    Pinned to fp32: under bf16 autocast (the default on AVX512-BF16 CPUs) the two runs differ by ~1e-3."""
    common = ["--max-steps", "3", f"model={tiny_model}", "data.max_length=256", "train.micro_batch_tokens=512",
              "method.dropout=0.0", "train.threads=1", "train.eval_every=100", "train.dtype=fp32"]
    env = {**os.environ, "INSTRUCT_NO_PROGRESS": "1"}
    single, ddp = run_together(  # independent runs: started at once, their imports overlap
        [sys.executable, "-m", "instruct", "tune", "--data", str(tiny_data), "--output", str(tmp_path / "one"),
         "train.grad_accum=2", *common],
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "instruct", "tune", "--data",
         str(tiny_data), "--output", str(tmp_path / "two"), "train.grad_accum=1", *common], env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    read = lambda d: [json.loads(l)["loss"] for l in (tmp_path / d / "train_log.jsonl").read_text().splitlines()
                      if "loss" in json.loads(l)]
    assert read("one") == pytest.approx(read("two"), abs=1e-5)
