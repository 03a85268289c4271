"""Packing without cross-example attention, and loss normalisation under gradient accumulation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tune_support import tiny_model  # noqa: F401  (fixture)

from instruct.tune.data import IGNORE, TokenizedSet
from instruct.tune.loop import Distributed, accumulate_gradients
from instruct.tune.packing import BatchPlan, collate, plan_epoch
from instruct.tune.training import loss_sum


def random_set(count: int, seed: int = 0) -> TokenizedSet:
    """Examples of varied length whose second half is 'assistant' (trained)."""
    rng = np.random.default_rng(seed)
    ids, targets = [], []
    for _ in range(count):
        length = int(rng.integers(6, 40))
        x = rng.integers(10, 1000, length)
        t = np.full(length, IGNORE)
        t[length // 2: -1] = x[length // 2 + 1:]
        ids.append(x)
        targets.append(t)
    return TokenizedSet([str(i) for i in range(count)], ids, targets)


def load(folder, attention: str, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM

    from instruct.tune.attention import register

    register()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention, dtype=dtype).eval()


@pytest.mark.parametrize("attention", ["eager", "sdpa", "packed_sdpa"])
def test_packed_loss_equals_unpacked(tiny_model, attention):
    model = load(tiny_model, attention)
    data = random_set(6)
    everything = list(range(len(data)))
    with torch.no_grad():
        packed = loss_sum(model, collate(data, everything, pack=True), select_logits=True)
        packed_all_logits = loss_sum(model, collate(data, everything, pack=True), select_logits=False)
        separate = sum(loss_sum(model, collate(data, [i], pack=False), select_logits=False) for i in everything)
        padded = loss_sum(model, collate(data, everything, pack=False), select_logits=False)
    trained = sum(int((t != IGNORE).sum()) for t in data.targets)
    for other in (packed_all_logits, separate, padded):
        assert abs(float(packed - other)) / trained < 1e-4


def test_packing_without_position_restart_would_leak(tiny_model):
    """The control: the same row as one long sequence attends across examples and changes the loss."""
    model = load(tiny_model, "sdpa")
    data = random_set(6)
    batch = collate(data, list(range(6)), pack=True)
    leaky = {"input_ids": batch.inputs["input_ids"]}
    with torch.no_grad():
        packed = loss_sum(model, batch, select_logits=True)
        batch.inputs = leaky
        leaking = loss_sum(model, batch, select_logits=True)
    assert abs(float(packed - leaking)) / batch.trained > 1e-3


def test_gradient_accumulation_matches_one_big_batch(tiny_model):
    """Uneven micro-batches, normalised by the step's trained tokens == all examples in one batch."""
    model = load(tiny_model, "packed_sdpa")
    data = random_set(7, seed=1)
    micro = [collate(data, group, pack=True) for group in ([0], [1, 2, 3], [4, 5, 6])]
    assert len({b.trained for b in micro}) == 3  # deliberately uneven
    step_trained = sum(b.trained for b in micro)

    def gradient(batches, total):
        model.zero_grad()
        accumulate_gradients(model, batches, total, Distributed(), select_logits=True)
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    accumulated = gradient(micro, step_trained)
    whole = gradient([collate(data, list(range(7)), pack=True)], step_trained)
    assert torch.allclose(accumulated, whole, atol=1e-6, rtol=1e-4)
    # the common bug, averaging each micro-batch's mean, gives a different gradient
    model.zero_grad()
    for batch in micro:
        (loss_sum(model, batch, True) / batch.trained / len(micro)).backward()
    naive = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert not torch.allclose(naive, whole, atol=1e-6, rtol=1e-3)


def test_plan_is_deterministic_complete_and_within_budget():
    lengths = np.random.default_rng(0).integers(5, 300, 500)
    for pack in (True, False):
        plan = plan_epoch(lengths, 1024, pack, seed=3, epoch=0)
        assert plan == plan_epoch(lengths, 1024, pack, seed=3, epoch=0)
        assert sorted(i for group in plan for i in group) == list(range(500))
        cost = (lambda g: sum(lengths[g])) if pack else (lambda g: max(lengths[g]) * len(g))
        assert all(cost(group) <= 1024 for group in plan)
    packed = plan_epoch(lengths, 1024, True, seed=3, epoch=0)
    assert sum(lengths) / (len(packed) * 1024) > 0.95  # rows are nearly full
    assert plan_epoch(lengths, 1024, True, seed=3, epoch=1) != packed  # a new order each epoch
    bp = BatchPlan(lengths, 1024, True, seed=3)
    assert bp.micro_batch(len(packed))[0] == 1 and bp.micro_batch(0)[1] == packed[0]


def test_packed_attention_runs_bf16_in_the_fp32_kernel_on_cpu_and_keeps_bf16_for_backward():
    """Under bf16 autocast the CPU kernel computes in fp32 (the forward is the fp32 kernel's, rounded), what
    backward keeps is bf16 (plus the fp32 log-sum-exp), and the gradients are closer to fp64's than the
    bf16 kernel's are."""
    from types import SimpleNamespace

    from instruct.tune.attention import packed_kwargs, packed_sdpa_forward

    torch.manual_seed(0)
    lengths = [37, 52, 29]
    tokens, cuts = sum(lengths), packed_kwargs(lengths)["cu_seq_lens_q"].tolist()
    q, k, v = (torch.randn(1, heads, tokens, 64).bfloat16().requires_grad_() for heads in (6, 2, 2))
    kept: list[torch.Tensor] = []
    with torch.autocast("cpu", dtype=torch.bfloat16), \
            torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        ours, _ = packed_sdpa_forward(SimpleNamespace(training=True), q, k, v, None, **packed_kwargs(lengths))
    assert ours.dtype == torch.bfloat16 and ours.shape == (1, tokens, 6, 64)
    assert sum(t.untyped_storage().nbytes() for t in kept) <= 2 * (6 + 2 + 2 + 6) * tokens * 64 + 4 * 6 * tokens
    ours.float().square().sum().backward()

    def reference(dtype: torch.dtype) -> tuple[torch.Tensor, list[torch.Tensor]]:
        inputs = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        out = torch.cat([torch.nn.functional.scaled_dot_product_attention(
            *(t[:, :, a:b] for t in inputs), is_causal=True, enable_gqa=True)
            for a, b in zip(cuts[:-1], cuts[1:])], dim=2)
        out.backward(2 * out.detach().bfloat16().to(dtype))  # the upstream gradient ours got
        return out.detach().transpose(1, 2), inputs

    fp32_out, _ = reference(torch.float32)
    assert torch.equal(ours, fp32_out.bfloat16())
    _, exact = reference(torch.float64)
    _, bf16_kernel = reference(torch.bfloat16)
    for mine, truth, theirs in zip((q, k, v), exact, bf16_kernel):
        assert mine.grad.dtype == torch.bfloat16
        error = (mine.grad.double() - truth.grad).abs()
        rounding = (truth.grad.bfloat16().double() - truth.grad).abs().max()
        assert error.max() <= 2 * rounding
        assert error.mean() < (theirs.grad.double() - truth.grad).abs().mean()


def test_checkpointed_layers_give_the_same_bf16_gradients_through_the_fp32_attention_kernel(tiny_model, monkeypatch):
    """Activation checkpointing recomputes the attention Function's forward in backward: the gradients
    must be the unchecked run's bit for bit (it was once suspected of a defect there). The weights are bf16,
    as the frozen base of an adapter method is, so queries reach the attention in bf16."""
    from instruct.tune import attention
    from instruct.tune.methods import enable_checkpointing

    model = load(tiny_model, "packed_sdpa", torch.bfloat16).train()
    batch = collate(random_set(5, seed=2), list(range(5)), pack=True)

    def gradient() -> torch.Tensor:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_sum(model, batch, True)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    calls = []
    monkeypatch.setattr(attention._Fp32FlashSegments, "apply",
                        lambda *args, real=attention._Fp32FlashSegments.apply: calls.append(1) or real(*args))
    plain = gradient()
    assert calls  # the Function ran
    enable_checkpointing(model)
    assert model.is_gradient_checkpointing
    checkpointed = gradient()
    assert plain.abs().sum() > 0 and torch.equal(plain, checkpointed)
