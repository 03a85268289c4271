"""Cross-entropy through the LM head in chunks of tokens, so [tokens, vocab] fp32 logits never exist at once.

The vocabulary projection is the largest activation of a small model (49k x 4 bytes per token
for SmolLM2, more than all its decoder layers together). `linear_cross_entropy` runs the head
over `chunk` tokens at a time, takes the fp32 log-softmax and, for a plain linear head, computes
that chunk's gradients right away (the softmax minus the one-hot target, times the head weight),
so only the gradients wait for backward: no logits are stored or recomputed. Other heads (a LoRA
on lm_head, say) go through activation checkpointing per chunk instead. The loss is always fp32.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# config keys of models whose forward transforms the logits after the head (softcapping, scaling):
# for those the head cannot be split off, and the loss falls back to full logits
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def splittable_head(model: nn.Module) -> nn.Module | None:
    """The model's output projection when its forward applies nothing after it, else None."""
    config = getattr(model, "config", None)
    if config is None or any(getattr(config, key, None) not in (None, 1, 1.0) for key in LOGIT_POSTPROCESSING):
        return None
    head = model.get_output_embeddings()
    return head if isinstance(head, nn.Module) else None


@contextlib.contextmanager
def head_bypassed(head: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
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


def linear_cross_entropy(hidden: torch.Tensor, head: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                         targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Summed cross-entropy of `forward(hidden)` against `targets` ([tokens, hidden] and [tokens]; all trained)."""
    weight = getattr(head, "weight", None)
    if type(head) is nn.Linear and head.bias is None and weight is not None:
        return _ChunkedLinearCE.apply(hidden, weight, targets, chunk)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        total = total + checkpoint(_chunk_loss, forward, hidden[start:start + chunk], targets[start:start + chunk],
                                   use_reentrant=False)
    return total


def _chunk_loss(forward: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(forward(hidden).float(), targets, reduction="sum")


class _ChunkedLinearCE(torch.autograd.Function):
    """sum CE(hidden @ weight.T, targets), gradients computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) \
            else hidden.dtype
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
            grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start:start + chunk].to(dtype)
                t = targets[start:start + chunk]
                logits = (h @ w.T).float()
                log_z = torch.logsumexp(logits, dim=-1)
                total += (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum()
                if grad_hidden is None and grad_weight is None:
                    continue
                grad = logits.sub_(log_z[:, None]).exp_()  # softmax, in place of the logits
                grad[torch.arange(len(t), device=t.device), t] -= 1
                grad = grad.to(dtype)
                if grad_hidden is not None:
                    grad_hidden[start:start + chunk] = (grad @ w).to(hidden.dtype)
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
