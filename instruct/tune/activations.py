"""Leaner saved activations for Llama-style decoder layers under autocast, computing the same numbers.

What autograd keeps for backward is most of a small model's training memory, and three habits of
the stock modules keep more than the math needs under bf16 autocast (the census is in
bench/README.md, issue 13):
- RMSNorm returns fp32, so each projection it feeds (q, k, v; gate, up) casts its own bf16 copy
  and keeps it for its weight gradient: five copies of two tensors. Returning the bf16 cast once
  (the very values every projection computed) lets them share one.
- peft casts an adapter's input up to the adapter's fp32 weight before autocast casts it down again,
  which breaks that sharing; under autocast the round trip is skipped (autocast picks the matmul
  dtype either way, so the product is unchanged).
- SwiGLU keeps silu(gate) beside gate and up; `swiglu` recomputes it in backward instead.
Without autocast every patched forward is the stock one, so fp32 training is untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import SiLUActivation

# RMSNorm classes whose forward is Llama's: weight * normalize(x in fp32), cast back to x's dtype
LLAMA_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")
DECODER_NORMS = ("input_layernorm", "post_attention_layernorm")


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up, keeping only gate and up for backward; silu is recomputed there.

    Backward runs the very kernels stock autograd runs for `act_fn(gate) * up` (a multiply and
    `silu_backward`, which computes in fp32 inside for bf16 tensors), so the gradients are the
    stock ones bit for bit, in four passes over [tokens, intermediate] rather than ten in fp32."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate, up = ctx.saved_tensors
        grad_up = grad * F.silu(gate)
        return torch.ops.aten.silu_backward(grad * up, gate), grad_up


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return _SwiGLU.apply(gate, up)


def slim_activations(model: nn.Module) -> int:
    """Patch every decoder layer of a Llama-style model (and its peft adapters) in place; the number of
    modules patched (0 for architectures this does not know, which keep their stock forward)."""
    patched = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in DECODER_NORMS and type(module).__name__ in LLAMA_NORMS:
            module.forward = MethodType(_norm_forward(type(module).forward), module)
            patched += 1
        elif _is_swiglu_mlp(module):
            module.forward = MethodType(_mlp_forward, module)
            patched += 1
        elif hasattr(module, "_cast_input_dtype") and hasattr(module, "lora_A"):
            module._cast_input_dtype = MethodType(_adapter_cast(type(module)._cast_input_dtype), module)
            patched += 1
    return patched


def _norm_forward(stock: Callable) -> Callable:
    def forward(self: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        out = stock(self, hidden)
        kind = hidden.device.type
        return out.to(torch.get_autocast_dtype(kind)) if torch.is_autocast_enabled(kind) else out
    return forward


def _is_swiglu_mlp(module: nn.Module) -> bool:
    return (all(hasattr(module, p) for p in ("gate_proj", "up_proj", "down_proj"))
            and isinstance(getattr(module, "act_fn", None), (nn.SiLU, SiLUActivation)))


def _mlp_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def _adapter_cast(stock: Callable) -> Callable:
    def cast(self: nn.Module, x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        if x is not None and torch.is_autocast_enabled(x.device.type):
            return x
        return stock(self, x, dtype)
    return cast
