"""Each fine-tuning method trains exactly the parameters it claims, learns, starts where it should and reloads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_tune_support import (  # noqa: F401  (fixtures)
    make_tiny_model,
    start_until_killed,
    tiny_config,
    tiny_data,
    tiny_model,
)

from instruct.tune import load_config, load_model, train
from instruct.tune.config import DistillConfig
from instruct.tune.distill import distill_loss_sum, divergence
from instruct.tune.method_hooks import set_total_steps
from instruct.tune.methods import apply_method, load_base, parameter_groups

ADAPTERS = ("houlsby", "pfeiffer", "parallel_adapter", "unipelt")

ROOT = Path(__file__).resolve().parents[1]


def method(name: str, *overrides: str):
    return load_config(None, [f"method.name={name}", *overrides], {"data.path": "x", "output": "y"}).method


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_freeze_trains_exactly_the_top_blocks_and_the_final_norm(tiny_model):
    model = apply_method(load_base(tiny_model)[0], method("freeze", "method.trainable_layers=1"))
    names = trainable_names(model)
    assert names and all(n.startswith("model.layers.1.") or n == "model.norm.weight" for n in names)
    assert {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")} <= names
    assert "model.norm.weight" in names


@pytest.mark.parametrize("include_norms", [False, True])
def test_bitfit_trains_exactly_the_biases_and_norms_when_asked(tmp_path, include_norms):
    model, _ = load_base(make_tiny_model(tmp_path / "biased", bias=True))
    model = apply_method(model, method("bitfit", f"method.include_norms={str(include_norms).lower()}"))
    names = trainable_names(model)
    biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    norms = {n for n, _ in model.named_parameters() if "norm" in n}
    assert names == (biases | norms if include_norms else biases)


@pytest.mark.parametrize("name", ADAPTERS)
def test_bottleneck_adapters_start_as_the_base_model(tiny_model, name):
    model = load_base(tiny_model)[0].eval()
    ids = torch.randint(0, 1000, (1, 16))
    before = logits(model, ids)
    adapted = apply_method(model, method(name)).eval()
    assert torch.equal(logits(adapted, ids), before)
    assert all(p.dtype == torch.float32 for p in adapted.parameters() if p.requires_grad)
    from instruct.tune.bottleneck import MARKERS

    trainable = trainable_names(adapted)
    assert trainable and all(any(m in n for m in MARKERS) for n in trainable)  # only the added modules train
    assert sum(not p.requires_grad for p in adapted.parameters()) == len(list(model.parameters())) - len(trainable)


@pytest.mark.parametrize("name", ["houlsby", "pfeiffer", "parallel_adapter", "unipelt", "adalora", "lora_plus",
                                  "pissa", "prompt_tuning", "prefix_tuning", "p_tuning"])
def test_method_learns_and_its_output_reloads_to_the_same_logits(tiny_model, tiny_data, tmp_path, name):
    config = tiny_config(tiny_model, tiny_data, tmp_path / name, "train.max_steps=8", f"method.name={name}",
                         "method.num_virtual_tokens=4", "method.dropout=0.0", "train.lr=1e-2", "method.r=4",
                         "method.target_r=2", "train.eval_every=8")
    result = train(config, show_progress=False)
    assert result.eval_loss < result.initial_eval_loss, (result.initial_eval_loss, result.eval_loss)
    reloaded, _ = load_model(adapter=result.output, dtype="fp32")
    again, _ = load_model(adapter=result.output, dtype="fp32")
    ids = torch.randint(0, 1000, (1, 12))
    tuned = logits(reloaded, ids)[:, -12:]  # prompt/p-tuning prepend virtual tokens
    assert torch.allclose(tuned, logits(again, ids)[:, -12:])
    base = logits(load_base(tiny_model)[0].eval(), ids)
    assert not torch.allclose(tuned, base, atol=1e-4)  # the saved adapter is what was trained


def test_adalora_reallocates_ranks_during_training(tiny_model, tiny_data, tmp_path):
    config = tiny_config(tiny_model, tiny_data, tmp_path / "ada", "method.name=adalora", "method.r=6",
                         "method.target_r=2", "train.max_steps=10", "method.tinit=2", "method.tfinal=2",
                         "train.lr=1e-2")
    result = train(config, show_progress=False)
    ranks = result.method_summary["adalora_ranks"]
    assert ranks and max(ranks.values()) <= 6
    assert sum(ranks.values()) < 6 * len(ranks)  # the budget shrank from init_r towards target_r
    assert json.loads((tmp_path / "ada" / "result.json").read_text())["method_summary"]["adalora_ranks"] == ranks


def test_adalora_recipe_schedule_needs_room_and_is_a_one_line_error(tiny_model):
    from instruct.config import ConfigError

    recipe = ROOT / "trainer" / "adalora.yaml"  # tinit 10 + tfinal 10
    with pytest.raises(ConfigError, match=r"tinit \+ method.tfinal \(10 \+ 10\).*12 steps \(train.max_steps\)"):
        load_config(recipe, ["train.max_steps=12"], {"data.path": "d", "output": "o"})
    config = load_config(recipe, [], {"data.path": "d", "output": "o"})  # steps planned later
    model = apply_method(load_base(tiny_model)[0], config.method)  # peft refused a provisional total of 1 step
    with pytest.raises(ConfigError, match="in 15 steps \\(the planned run\\)"):
        set_total_steps(model, 15, config.method)
    set_total_steps(model, 40, config.method)
    assert model.peft_config["default"].total_step == 40


def test_lora_plus_gives_b_matrices_the_higher_learning_rate(tiny_model):
    model = apply_method(load_base(tiny_model)[0], method("lora_plus", "method.lora_plus_ratio=8"))
    slow, fast = parameter_groups(model, method("lora_plus", "method.lora_plus_ratio=8"), 1e-4)
    assert fast["lr"] == pytest.approx(8e-4) and slow["lr"] == pytest.approx(1e-4)
    named = {id(p): n for n, p in model.named_parameters()}
    assert fast["params"] and all("lora_B" in named[id(p)] for p in fast["params"])
    assert all("lora_A" in named[id(p)] for p in slow["params"])


def test_unipelt_gates_receive_gradients(tiny_model):
    model = apply_method(load_base(tiny_model)[0], method("unipelt", "method.num_virtual_tokens=3"))
    # move the zero-initialised up-projections off zero, else no gradient reaches the gates by construction
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if any(k in name for k in ("adapter.up", "lora_up", "unipelt_prefix_value")):
                parameter.normal_(0, 0.1)
    ids = torch.randint(0, 1000, (2, 10))
    model(input_ids=ids).logits.square().mean().backward()
    kinds = ("adapter_gate", "lora_gate", "unipelt_prefix_gate")
    gates = {n: p.grad for n, p in model.named_parameters() if any(k in n for k in kinds)}
    assert {k for n in gates for k in kinds if k in n} == set(kinds) and len(gates) == 2 * 2 * 4  # 2 layers
    assert all(g is not None and g.abs().sum() > 0 for g in gates.values())


def test_unfreeze_schedule_thaws_blocks_top_down(tiny_model, tiny_data, tmp_path):
    config = tiny_config(tiny_model, tiny_data, tmp_path / "thaw", "method.name=freeze", "train.max_steps=4",
                         "train.unfreeze_schedule.every_steps=2", "train.unfreeze_schedule.initial_layers=1")
    seen = []
    result = train(config, show_progress=False, on_step=lambda r: seen.append(r["step"]))
    assert result.method_summary == {"unfrozen_layers": 2} and seen == [1, 2, 3, 4]
    from transformers import AutoModelForCausalLM

    base = dict(AutoModelForCausalLM.from_pretrained(tiny_model).named_parameters())
    tuned = dict(AutoModelForCausalLM.from_pretrained(result.output).named_parameters())
    changed = lambda prefix: any(not torch.equal(base[n], tuned[n]) for n in base if n.startswith(prefix))  # noqa: E731
    assert changed("model.layers.1.") and changed("model.layers.0.")  # block 0 thawed at step 3
    assert torch.equal(base["model.embed_tokens.weight"], tuned["model.embed_tokens.weight"])


@pytest.mark.slow
def test_unfreeze_schedule_resumes_exactly_after_sigkill(tiny_model, tiny_data, tmp_path):
    args = ["method.name=freeze", "train.max_steps=8", "train.save_every=3", "train.eval_every=100",
            "train.unfreeze_schedule.every_steps=4", "method.dropout=0.0"]
    killed = tmp_path / "killed"
    wait = start_until_killed(tiny_model, tiny_data, killed, args, kill_at_step=5)
    straight = train(tiny_config(tiny_model, tiny_data, tmp_path / "straight", *args), show_progress=False)
    wait()  # the child trained alongside the straight run
    resumed = train(tiny_config(tiny_model, tiny_data, killed, *args), show_progress=False)
    assert resumed.resumed_from == 3  # before the schedule thawed block 0 at step 5
    losses = lambda r: {x["step"]: x["loss"] for x in r.log if "loss" in x}  # noqa: E731
    assert losses(resumed) == pytest.approx(losses(straight), abs=1e-6)


@pytest.mark.slow
def test_adalora_resumes_exactly_after_sigkill(tiny_model, tiny_data, tmp_path):
    """The rank allocator's importance averages and rank pattern travel in the checkpoint: without them a
    resumed run masks other ranks than the straight one."""
    args = ["method.name=adalora", "method.r=6", "method.target_r=2", "train.max_steps=9", "method.tinit=1",
            "method.tfinal=3", "train.save_every=4", "train.eval_every=100", "train.lr=1e-2", "method.dropout=0.0"]
    killed = tmp_path / "killed"
    wait = start_until_killed(tiny_model, tiny_data, killed, args, kill_at_step=6)
    straight = train(tiny_config(tiny_model, tiny_data, tmp_path / "straight", *args), show_progress=False)
    wait()  # the child trained alongside the straight run
    resumed = train(tiny_config(tiny_model, tiny_data, killed, *args), show_progress=False)
    assert resumed.resumed_from == 4
    losses = lambda r: {x["step"]: x["loss"] for x in r.log if "loss" in x}  # noqa: E731
    assert losses(resumed) == pytest.approx(losses(straight), abs=1e-6)
    assert resumed.method_summary == straight.method_summary


# --- distillation -------------------------------------------------------------------------------

def _hand_divergence(student, teacher, config: DistillConfig) -> float:
    """The formulas written out per token with plain probabilities."""
    t = config.temperature
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        q = torch.softmax(torch.tensor(s_row, dtype=torch.float64) / t, 0)
        p = torch.softmax(torch.tensor(t_row, dtype=torch.float64) / t, 0)
        kl = lambda a, b: float((a * (a / b).log()).sum())  # noqa: E731
        if config.loss == "forward_kl":
            total += kl(p, q)
        elif config.loss == "reverse_kl":
            total += kl(q, p)
        else:
            m = config.jsd_beta * p + (1 - config.jsd_beta) * q
            total += config.jsd_beta * kl(p, m) + (1 - config.jsd_beta) * kl(q, m)
    return total * t * t


@pytest.mark.parametrize("loss", ["forward_kl", "reverse_kl", "jsd"])
def test_distillation_loss_equals_the_hand_computation(loss):
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 11), torch.randn(5, 11) * 2
    targets = torch.randint(0, 11, (5,))
    config = DistillConfig(teacher="t", loss=loss, temperature=1.7, alpha=0.3, jsd_beta=0.4)
    assert float(divergence(student, teacher, config)) == pytest.approx(_hand_divergence(student, teacher, config),
                                                                        rel=1e-5)
    ce = float(torch.nn.functional.cross_entropy(student, targets, reduction="sum"))
    expected = 0.3 * _hand_divergence(student, teacher, config) + 0.7 * ce
    assert float(distill_loss_sum(student, teacher, targets, config)) == pytest.approx(expected, rel=1e-5)
    assert float(divergence(teacher, teacher, config)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_students_kl_to_the_teacher_falls(tiny_model, tiny_data, tmp_path):
    # a teacher that knows something the student does not: the student fully tuned on the data first
    teacher = train(tiny_config(tiny_model, tiny_data, tmp_path / "teacher", "method.name=full", "train.max_steps=6"),
                    show_progress=False).output
    config = tiny_config(tiny_model, tiny_data, tmp_path / "student", "train.max_steps=6", "method.name=full",
                         f"distill.teacher={teacher}", "distill.alpha=1.0", "method.dropout=0.0")
    result = train(config, show_progress=False)
    losses = [r["loss"] for r in result.log if "loss" in r]  # with alpha=1 the loss is the T^2-scaled KL alone
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses


def test_distillation_refuses_a_teacher_with_another_tokenizer(tiny_model, tiny_data, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from instruct.config import ConfigError

    folder = tmp_path / "alien"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_tokens(["<alien-token>"])
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ConfigError, match="different tokenizer"):
        train(tiny_config(tiny_model, tiny_data, tmp_path / "s", "train.max_steps=1", f"distill.teacher={folder}"),
              show_progress=False)
