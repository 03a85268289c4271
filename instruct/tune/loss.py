"""Cross-entropy and per-token log-probs through the LM head in chunks, so [tokens, vocab] fp32 logits never
exist at once.

The vocabulary projection is the largest activation of a small model (49k x 4 bytes per token
for SmolLM2, more than all its decoder layers together). `linear_cross_entropy` runs the head
over `chunk` tokens at a time, takes the fp32 log-softmax and, for a plain linear head, computes
that chunk's gradients right away (the softmax minus the one-hot target, times the head weight),
so only the gradients wait for backward: no logits are stored or recomputed. Other heads (a LoRA
on lm_head, say) go through activation checkpointing per chunk instead. The loss is fp32 (fp64 for fp64 inputs).

`linear_token_logps` gives each token's log-prob instead of their sum (DPO weighs every sequence's
sum differently). A token's log-prob depends on its own hidden state only, so for a frozen plain
head d logp / d hidden is computed in forward as for the sum and scaled by each token's upstream
gradient in backward; a trained head's weight gradient needs those upstream gradients across the
whole vocabulary, so a trained (or non-linear) head is checkpointed per chunk. Without a graph
(a reference model under no_grad) the chunks are computed and dropped.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from instruct.tune.data import IGNORE

# config keys of models whose forward transforms the logits after the head (softcapping, scaling):
# for those the head cannot be split off, and the loss falls back to full logits
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")

HeadForward = Callable[[torch.Tensor], torch.Tensor]


def splittable_head(model: nn.Module) -> nn.Module | None:
    """The model's output projection when its forward applies nothing after it, else None."""
    config = getattr(model, "config", None)
    if config is None or any(getattr(config, key, None) not in (None, 1, 1.0) for key in LOGIT_POSTPROCESSING):
        return None
    head = model.get_output_embeddings()
    return head if isinstance(head, nn.Module) else None


@contextlib.contextmanager
def head_bypassed(head: nn.Module) -> Iterator[HeadForward]:
    """Within the block the model's forward returns final hidden states where it returned logits;
    yields the head's real forward (for `linear_cross_entropy`)."""
    own = head.__dict__.get("forward")  # a hook library's wrapper, if any, is put back as it was
    real = head.forward
    head.forward = lambda hidden, *args, **kwargs: hidden
    try:
        yield real
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


def trained_outputs(model: nn.Module, inputs: dict[str, Any], targets: torch.Tensor,
                    select_logits: bool) -> tuple[torch.Tensor, nn.Module | None, HeadForward | None]:
    """(outputs at the trained positions of `targets`, in row-major order, the head, its forward).

    Where the head splits off the outputs are final hidden states ([trained, hidden]) for
    `linear_cross_entropy` / `linear_token_logps`, else logits and (None, None). `select_logits`
    (one packed row) skips the decoder's last gather for untrained positions via `logits_to_keep`."""
    head = splittable_head(model)
    with head_bypassed(head) if head is not None else contextlib.nullcontext() as forward:
        if select_logits:
            keep = torch.nonzero(targets[0] != IGNORE).squeeze(1)
            outputs = model(**inputs, use_cache=False, logits_to_keep=keep).logits[0]
        else:
            outputs = model(**inputs, use_cache=False).logits
            outputs = outputs[:, -targets.shape[1]:][targets != IGNORE]  # prompt tuning prepends virtual tokens
    return outputs, head, forward


def linear_cross_entropy(hidden: torch.Tensor, head: nn.Module, forward: HeadForward,
                         targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Summed cross-entropy of `forward(hidden)` against `targets` ([tokens, hidden] and [tokens]; all trained)."""
    if _plain(head):
        return _ChunkedLinearCE.apply(hidden, head.weight, targets, chunk)
    return -_checkpointed_logps(hidden, forward, targets, chunk).sum()


def linear_token_logps(hidden: torch.Tensor, head: nn.Module, forward: HeadForward,
                       targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """log p(target) of each token under `forward(hidden)`: [tokens], at least fp32."""
    if not torch.is_grad_enabled() or not (hidden.requires_grad or any(p.requires_grad for p in head.parameters())):
        return torch.cat([_chunk_logps(forward, hidden[rows], targets[rows]) for rows in _spans(hidden, chunk)])
    if _plain(head) and not head.weight.requires_grad:
        return _ChunkedLinearLogps.apply(hidden, head.weight, targets, chunk)
    return _checkpointed_logps(hidden, forward, targets, chunk)


def logits_token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The same from whole logits (a head that does not split off)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 at least (fp64 stays fp64)
    return -F.cross_entropy(logits, targets, reduction="none")


def _plain(head: nn.Module) -> bool:
    return type(head) is nn.Linear and head.bias is None and getattr(head, "weight", None) is not None


def _spans(hidden: torch.Tensor, chunk: int) -> list[slice]:
    """Rows of `hidden` in chunks; one empty chunk when there are no rows (the result is then empty, not an error)."""
    return [slice(start, start + chunk) for start in range(0, max(1, hidden.shape[0]), chunk)]


def _checkpointed_logps(hidden: torch.Tensor, forward: HeadForward, targets: torch.Tensor,
                        chunk: int) -> torch.Tensor:
    return torch.cat([checkpoint(_chunk_logps, forward, hidden[rows], targets[rows], use_reentrant=False)
                      for rows in _spans(hidden, chunk)])


def _chunk_logps(forward: HeadForward, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logits_token_logps(forward(hidden), targets)


def _fused_chunks(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                  gradients: bool) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
    """Per chunk of tokens: (its rows, log p(target), the head's input h and weight w in the compute dtype,
    and with `gradients` d(-log p)/d logits = softmax - one-hot in that dtype). Autocast's dtype is the
    compute dtype when it is on, as for the model's own head; the log-softmax is at least fp32."""
    dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) \
        else hidden.dtype
    with torch.autocast(hidden.device.type, enabled=False):
        w = weight.to(dtype)
        for rows in _spans(hidden, chunk):
            h, t = hidden[rows].to(dtype), targets[rows]
            # one fused kernel casts the low-precision logits up and normalises them
            log_probs = torch.log_softmax(h @ w.T, dim=-1, dtype=torch.promote_types(dtype, torch.float32))
            logps = log_probs.gather(1, t[:, None]).squeeze(1)
            grad = None
            if gradients:
                grad = log_probs.exp_()  # softmax, in place of the log-probs
                grad[torch.arange(len(t), device=t.device), t] -= 1
                grad = grad.to(dtype)
            yield rows, logps, h, grad, w


class _ChunkedLinearCE(torch.autograd.Function):
    """sum CE(hidden @ weight.T, targets), gradients computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        total = torch.zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32), device=hidden.device)
        for rows, logps, h, grad, w in _fused_chunks(hidden, weight, targets, chunk, need_hidden or need_weight):
            total -= logps.sum()
            if grad_hidden is not None:
                grad_hidden[rows] = (grad @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += (grad.T @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (None if grad_hidden is None else grad_hidden * grad_output.to(grad_hidden.dtype),
                None if grad_weight is None else (grad_weight * grad_output).to(ctx.weight_dtype), None, None)


class _ChunkedLinearLogps(torch.autograd.Function):
    """log_softmax(hidden @ weight.T)[targets] per token for a frozen weight; d logp / d hidden computed in forward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        out = torch.empty(hidden.shape[0], dtype=torch.promote_types(hidden.dtype, torch.float32),
                          device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        for rows, logps, _, grad, w in _fused_chunks(hidden, weight, targets, chunk, True):
            out[rows] = logps
            grad_hidden[rows] = (grad @ w).neg_().to(hidden.dtype)
        ctx.save_for_backward(grad_hidden)
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_output.to(grad_hidden.dtype)[:, None], None, None, None
