"""Defaults that work on an ordinary machine: chunked cross-entropy, bf16 autocast, the data-adaptive
step plan, the memory plan, and report_to."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_tune_support import make_tiny_model, tiny_config, tiny_data, tiny_model  # noqa: F401  (fixtures)
from torch import nn

from instruct.config import ConfigError
from instruct.tune import load_config, train
from instruct.tune.loss import linear_cross_entropy, linear_token_logps
from instruct.tune.memory import (
    MAX_MICRO_TOKENS,
    activation_bytes,
    checkpointed_per_token,
    parse_size,
    plan_memory,
)
from instruct.tune.plan import LR_DEFAULTS, MAX_STEP_TOKENS, TARGET_STEPS, plan_steps
from instruct.tune.precision import cpu_bf16_units, training_dtype

BF16_TOLERANCE = 0.02  # bf16 autocast follows the fp32 loss curve within 2 % per step (relative)


@pytest.mark.parametrize("plain_head", [True, False], ids=["fused-linear", "checkpointed-head"])
@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_chunked_cross_entropy_equals_the_full_one(plain_head, chunk):
    torch.manual_seed(0)
    head = nn.Linear(32, 500, bias=False) if plain_head else nn.Sequential(nn.Linear(32, 500))
    hidden = torch.randn(93, 32, requires_grad=True)
    targets = torch.randint(0, 500, (93,))

    full = F.cross_entropy(head(hidden), targets, reduction="sum")
    full.backward()
    expected = hidden.grad.clone(), [p.grad.clone() for p in head.parameters()]
    hidden.grad = None
    head.zero_grad()

    chunked = linear_cross_entropy(hidden, head, head.forward, targets, chunk)
    (chunked * 0.5).backward()  # a scaled upstream gradient flows through
    assert chunked.dtype == torch.float32
    assert torch.allclose(chunked, full, rtol=1e-5)
    assert torch.allclose(hidden.grad, 0.5 * expected[0], atol=1e-5)
    for got, want in zip([p.grad for p in head.parameters()], expected[1]):
        assert torch.allclose(got, 0.5 * want, atol=1e-5)


@pytest.mark.parametrize("head_kind", ["frozen-linear", "trained-linear", "non-linear"])
@pytest.mark.parametrize("chunk", [7, 1000])
def test_chunked_token_logps_equal_the_full_log_softmax(head_kind, chunk):
    """Per-token log-probs (DPO's) with a different upstream gradient on every token, in fp64."""
    torch.manual_seed(0)
    head = (nn.Sequential(nn.Linear(32, 500), nn.Tanh()) if head_kind == "non-linear"
            else nn.Linear(32, 500, bias=False)).double()
    head.requires_grad_(head_kind != "frozen-linear")
    hidden = torch.randn(93, 32, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 500, (93,))
    upstream = torch.randn(93, dtype=torch.float64)

    full = torch.log_softmax(head(hidden), -1).gather(1, targets[:, None]).squeeze(1)
    (full * upstream).sum().backward()
    expected = hidden.grad.clone(), [p.grad.clone() for p in head.parameters() if p.requires_grad]
    hidden.grad = None
    head.zero_grad()

    chunked = linear_token_logps(hidden, head, head.forward, targets, chunk)
    (chunked * upstream).sum().backward()
    assert chunked.dtype == torch.float64
    assert torch.allclose(chunked, full, rtol=1e-12)
    assert torch.allclose(hidden.grad, expected[0], rtol=1e-10, atol=1e-12)
    for got, want in zip([p.grad for p in head.parameters() if p.requires_grad], expected[1]):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # a reference pass: the same numbers, no graph
        assert torch.allclose(linear_token_logps(hidden, head, head.forward, targets, chunk), full, rtol=1e-12)


def test_loss_sum_through_peft_equals_cross_entropy_on_full_logits(tiny_model, tiny_data):
    from instruct.tune.config import MethodConfig
    from instruct.tune.data import IGNORE, load_examples, tokenize_table
    from instruct.tune.methods import apply_method, load_base
    from instruct.tune.packing import collate
    from instruct.tune.training import loss_sum

    model, tokenizer = load_base(tiny_model, attn_implementation="sdpa")
    model = apply_method(model, MethodConfig(dropout=0.0))
    data = tokenize_table(load_examples(tiny_data), tokenizer, 256, "drop", None)
    for pack in (True, False):
        batch = collate(data, [0, 1, 2], pack)
        logits = model(**batch.inputs, use_cache=False).logits
        want = F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=IGNORE,
                               reduction="sum")
        for select in ((True, False) if pack else (False,)):
            got = loss_sum(model, batch, select, chunk_tokens=16)
            assert torch.allclose(got, want, rtol=1e-5), (pack, select)
    assert type(model.get_output_embeddings()).forward is nn.Linear.forward  # the head is put back


def test_bf16_autocast_follows_the_fp32_loss_curve(tiny_model, tiny_data, tmp_path):
    curves = {}
    for dtype in ("fp32", "bf16"):
        result = train(tiny_config(tiny_model, tiny_data, tmp_path / dtype, "train.max_steps=12", f"train.dtype={dtype}",
                                   "train.eval_every=100", "method.dropout=0.0"), show_progress=False)
        curves[dtype] = np.array([r["loss"] for r in result.log if "loss" in r])
        assert result.plan["dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[dtype]
    relative = np.abs(curves["bf16"] - curves["fp32"]) / curves["fp32"]
    assert relative.max() < BF16_TOLERANCE, relative
    assert curves["bf16"][-3:].mean() < curves["bf16"][:3].mean() - 0.1  # it learns, it does not just sit close


def test_auto_dtype_is_bf16_exactly_where_the_cpu_has_bf16_units():
    dtype, why = training_dtype("auto", torch.device("cpu"))
    assert (dtype == torch.bfloat16) == (cpu_bf16_units() is not None), why
    assert training_dtype("fp32", torch.device("cpu"))[0] == torch.float32  # always selectable


def plan(count: int, mean: int, memory_micro: int = 4096, **explicit):
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.normal(mean, mean / 4, count), 8, 3 * mean).astype(np.int64)
    settings = {"lr": None, "epochs": None, "grad_accum": None, "micro_batch_tokens": None, "max_steps": None,
                **explicit}
    return plan_steps(lengths, memory_micro_tokens=memory_micro, pack=True, seed=0, world=1, method="lora",
                      **settings)[0], lengths


def test_small_data_gets_three_epochs_of_about_a_hundred_steps():
    small, _ = plan(400, 150)
    assert small.epochs == 3
    assert 0.85 * TARGET_STEPS <= small.steps <= 1.15 * TARGET_STEPS
    assert 10 <= small.examples_per_step <= 14  # 3 x 400 / 100 = 12
    assert small.grad_accum == 1 and small.micro_batch_tokens < 4096  # one micro-batch makes the step
    assert small.lr == LR_DEFAULTS["lora"] and small.lr_source == "lora default"
    tiny, _ = plan(40, 150)
    assert tiny.epochs == 3 and tiny.examples_per_step >= 4  # never steps of 1-2 examples


def test_large_data_gets_one_epoch_of_full_steps():
    large, lengths = plan(50_000, 300, memory_micro=2048)
    assert large.epochs == 1
    assert large.micro_batch_tokens == 2048 and large.grad_accum == MAX_STEP_TOKENS // 2048
    assert 0.8 * MAX_STEP_TOKENS <= large.tokens_per_step <= MAX_STEP_TOKENS
    assert large.steps == pytest.approx(lengths.sum() / large.tokens_per_step, rel=0.05)


def test_recipe_values_win_over_the_rule():
    fixed, _ = plan(400, 150, epochs=1, grad_accum=4, micro_batch_tokens=1024, lr=1e-3)
    assert (fixed.epochs, fixed.grad_accum, fixed.micro_batch_tokens, fixed.lr) == (1, 4, 1024, 1e-3)
    capped, _ = plan(400, 150, max_steps=7)
    assert capped.steps == 7


def test_tokens_per_step_sizes_the_step_and_the_plan_splits_it_to_fit_memory():
    roomy, lengths = plan(400, 150, tokens_per_step=1152)
    assert (roomy.grad_accum, roomy.micro_batch_tokens) == (1, 1152)
    assert 0.85 * 1152 <= roomy.tokens_per_step <= 1152  # a ceiling: packed bins are not filled to the last token
    assert roomy.steps == pytest.approx(3 * lengths.sum() / roomy.tokens_per_step, rel=0.1)  # 3 epochs as before
    tight, _ = plan(400, 150, memory_micro=768, tokens_per_step=1152)  # memory allows 768-token micro-batches
    assert (tight.grad_accum, tight.micro_batch_tokens) == (2, 576)
    assert 0.85 * 1152 <= tight.tokens_per_step <= 1152
    fixed, _ = plan(400, 150, micro_batch_tokens=512, tokens_per_step=2048)
    assert (fixed.micro_batch_tokens, fixed.grad_accum) == (512, 4)


def test_tokens_per_step_and_grad_accum_cannot_both_be_set(tmp_path):
    with pytest.raises(ConfigError, match="set one of them"):
        load_config(None, ["train.tokens_per_step=2048", "train.grad_accum=2"],
                    {"data.path": str(tmp_path / "d.jsonl"), "output": str(tmp_path / "o")})


def test_the_memory_plan_changes_with_the_budget(tiny_model):
    from instruct.tune.config import MethodConfig
    from instruct.tune.memory import SAFETY
    from instruct.tune.methods import apply_method, load_base
    from instruct.tune.run_plan import probe_batch
    from instruct.tune.training import loss_sum

    model, _ = load_base(tiny_model, attn_implementation="sdpa")
    model = apply_method(model, MethodConfig()).train()
    per_token, fixed = activation_bytes(lambda n: loss_sum(model, probe_batch(n, 49152, False), False, 64), model)
    # every decoder layer keeps at least its input and MLP activations (fp32): 2 layers x (64 + 128) x 4 bytes
    assert per_token > 2 * (64 + 128) * 4
    checkpointed = checkpointed_per_token(per_token, model, 4)
    assert checkpointed < per_token
    base = (200 << 20) + 10**6 * 12 + fixed + 64 * 49152 * 12  # resident + optimizer + fixed + a logits chunk

    def choose(room: float, **kwargs):
        return plan_memory(budget=int(base + room), budget_source="test", resident=200 << 20, trainable=10**6,
                           per_token=per_token, fixed_activations=fixed, per_token_checkpointed=checkpointed,
                           longest=300, vocab=49152, loss_chunk=64,
                           **{"micro_batch_tokens": None, "grad_checkpointing": None, "max_micro_tokens": 4096,
                              **kwargs})

    roomy = choose(1 << 30)
    tight = choose(SAFETY * per_token * 1500)
    tighter = choose(SAFETY * per_token * 400)  # the longest example (300 -> 512 tokens) no longer fits
    assert roomy.micro_batch_tokens == 4096 and not roomy.grad_checkpointing
    on_cpu = choose(1 << 30, max_micro_tokens=MAX_MICRO_TOKENS["cpu"])  # a CPU's tokens/s is flat beyond it
    assert on_cpu.micro_batch_tokens == 512 and on_cpu.estimate < roomy.estimate
    assert tight.micro_batch_tokens == 1280 and not tight.grad_checkpointing and tight.estimate <= tight.budget
    assert tighter.grad_checkpointing and tighter.micro_batch_tokens >= 512 and tighter.estimate <= tighter.budget
    with pytest.raises(ConfigError, match="train.memory_budget: .* too small"):
        choose(SAFETY * checkpointed * 100)
    kept = choose(SAFETY * checkpointed * 100, micro_batch_tokens=512)
    assert kept.micro_batch_tokens == 512 and kept.grad_checkpointing  # a recipe's value is kept


def test_memory_budget_sizes_parse():
    assert parse_size("800MB") == 800 << 20 and parse_size("6 GiB") == 6 << 30 and parse_size(2) == 2 << 30
    with pytest.raises(ConfigError, match="train.memory_budget"):
        parse_size("lots")


def test_report_to_tensorboard_writes_events_tensorboard_reads(tiny_model, tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_config(tiny_model, tiny_data, tmp_path / "out", "train.max_steps=3", "train.report_to=[tensorboard]"),
                   show_progress=False)
    events = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in losses] == [1, 2, 3]
    logged = {r["step"]: r["loss"] for r in result.log if "loss" in r}
    assert all(abs(value - logged[step]) < 1e-4 for step, value in losses)
    assert "train/eval_loss" in events.Tags()["scalars"]
    memory = json.loads((tmp_path / "out" / "plan.json").read_text())["memory"]
    assert memory["estimate"] > memory["resident"] and result.plan["memory"] == memory


def test_a_resumed_run_keeps_the_plan_it_started_with(tiny_model, tiny_data, tmp_path):
    planned = ["train.micro_batch_tokens=null", "train.grad_accum=null", "train.lr=null", "train.save_every=2"]
    first = train(tiny_config(tiny_model, tiny_data, tmp_path / "out", "train.max_steps=2", *planned),
                  show_progress=False)
    # far less memory on restart: planning afresh would refuse (budget too small); the saved plan runs as it was
    # (a longer run is a changed config: continuing it takes train.resume=force)
    resumed = train(tiny_config(tiny_model, tiny_data, tmp_path / "out", "train.max_steps=3", *planned[:-1],
                                "train.memory_budget=10MB", "train.resume=force"), show_progress=False)
    assert resumed.resumed_from == 2
    pinned = ("micro_batch_tokens", "grad_accum", "grad_checkpointing", "lr")  # epochs follow max_steps here
    assert [resumed.plan["resolved"][k] for k in pinned] == [first.plan["resolved"][k] for k in pinned]
    assert first.plan["lr_source"] == "lora default"


def _lora_pair(tiny_model, dtype: torch.dtype):  # noqa: F811
    """Two identical LoRA models over the tiny Llama (B moved off zero): one stock, one slimmed."""
    from peft import get_peft_model

    from instruct.tune.activations import slim_activations
    from instruct.tune.config import MethodConfig
    from instruct.tune.methods import load_base, peft_config

    models = []
    for _ in range(2):
        base, _ = load_base(tiny_model, attn_implementation="sdpa")
        torch.manual_seed(0)
        model = get_peft_model(base, peft_config(MethodConfig(), base, None, "CAUSAL_LM")).to(dtype)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.05)
        models.append(model.train())
    assert slim_activations(models[1]) == 2 * (2 + 1 + 7)  # 2 layers x (2 norms, the MLP, 7 adapted projections)
    return models


def _loss_and_grads(model, ids, autocast: bool):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids).logits
    loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_slim_activations_compute_the_same_loss_and_gradients(tiny_model):  # noqa: F811
    ids = torch.randint(0, 1000, (1, 48), generator=torch.Generator().manual_seed(3))
    stock, slim = _lora_pair(tiny_model, torch.float64)
    (stock_logits, stock_grads), (slim_logits, slim_grads) = (_loss_and_grads(m, ids, False) for m in (stock, slim))
    assert torch.allclose(stock_logits, slim_logits, atol=1e-12)
    for name, grad in stock_grads.items():
        assert torch.allclose(grad, slim_grads[name], atol=1e-12, rtol=1e-9), name

    stock, slim = _lora_pair(tiny_model, torch.float32)  # under bf16 autocast: the same forward, bit for bit
    (stock_logits, stock_grads), (slim_logits, slim_grads) = (_loss_and_grads(m, ids, True) for m in (stock, slim))
    assert torch.equal(stock_logits, slim_logits)
    for name, grad in stock_grads.items():  # backward differs only in where bf16 norm-output gradients are summed
        assert (grad - slim_grads[name]).abs().max() <= 0.02 * grad.abs().max() + 1e-8, name


def test_swiglu_gradients_are_the_stock_ones_bit_for_bit():
    """The recomputing SwiGLU runs stock autograd's kernels in backward: equal, not close, in bf16 too."""
    from instruct.tune.activations import swiglu

    for dtype in (torch.bfloat16, torch.float32):
        generator = torch.Generator().manual_seed(5)
        gate, up, grad = (torch.randn(96, 160, generator=generator).to(dtype) for _ in range(3))
        stock = [gate.clone().requires_grad_(), up.clone().requires_grad_()]
        (F.silu(stock[0]) * stock[1]).backward(grad)
        ours = [gate.clone().requires_grad_(), up.clone().requires_grad_()]
        swiglu(*ours).backward(grad)
        assert torch.equal(swiglu(gate, up), F.silu(gate) * up)
        for theirs, mine in zip(stock, ours):
            assert torch.equal(theirs.grad, mine.grad), dtype


def test_slim_activations_keep_less_for_backward_under_autocast(tiny_model):  # noqa: F811
    ids = torch.randint(0, 1000, (1, 512))
    kept = []
    for model in _lora_pair(tiny_model, torch.float32):
        def run(tokens: int, model=model) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(input_ids=ids[:, :tokens]).logits.sum()
        kept.append(activation_bytes(run, model)[0])
    stock, slim = kept
    # per layer the stock model keeps 5 bf16 copies of two norm outputs and silu(gate); slim keeps 2 and not silu
    assert slim <= 0.85 * stock, (stock, slim)
