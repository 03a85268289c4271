"""`packed_sdpa`: attention over a packed row as one causal SDPA call per example.

transformers turns restarting position ids into a [tokens x tokens] block-diagonal mask, and
a masked SDPA call on CPU falls back to the math kernel, which keeps the full attention matrix
of every layer for backward (gigabytes at 4k tokens). Cutting the row at the example
boundaries (`cu_seq_lens_q`, the same kwarg flash-attention's varlen path reads) lets every
call use `is_causal=True` and the memory-efficient flash kernel, with no cross-example
attention by construction. Without `cu_seq_lens_q` (padded batches, generation) it is plain sdpa.

`segment_prefix` (one (start, length) per segment) lets a segment also attend to the first `length`
tokens of the segment at `start`: a preference pair packs its prompt once, as the head of the
chosen sequence, and the rejected answer's queries read the prompt's keys and values from there.

On CPU, bf16 queries are cast up and the kernel runs in fp32: torch's CPU flash kernel in bf16 runs
its backward at about half the fp32 kernel's speed on ~130-token segments (no bf16 GEMM units used
at these sizes; bench/README.md, issue 13), and fp32 attention is the more exact of the two.
`_Fp32FlashSegments` does that while keeping only bf16 tensors for backward.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

NAME = "packed_sdpa"


def packed_sdpa_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                        **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None or query.shape[0] != 1 or key.shape[2] != query.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = key.shape[1] != query.shape[1]
    cuts = bounds.tolist()  # once per layer call: on a GPU each tolist() waits for the device
    prefixes = kwargs.get("segment_prefix")
    options = {"dropout_p": dropout if module.training else 0.0, "scale": scaling, "enable_gqa": gqa}
    kernel = kernel_dtype(query)
    if kernel != query.dtype and prefixes is None and not options["dropout_p"]:
        with torch.autocast(query.device.type, enabled=False):
            return _Fp32FlashSegments.apply(query, key, value, cuts, scaling), None
    prefixes = prefixes.tolist() if prefixes is not None else [(a, 0) for a in cuts[:-1]]
    with torch.autocast(query.device.type, enabled=False):  # autocast would cast SDPA's inputs back to bf16
        output = _segments_attention(query.to(kernel), key.to(kernel), value.to(kernel), cuts, prefixes, options)
    return output.to(query.dtype).transpose(1, 2).contiguous(), None


def kernel_dtype(query: torch.Tensor) -> torch.dtype:
    """fp32 for bf16 on CPU (the faster kernel there), the query's own dtype elsewhere."""
    return torch.float32 if query.device.type == "cpu" and query.dtype == torch.bfloat16 else query.dtype


class _Fp32FlashSegments(torch.autograd.Function):
    """Causal attention per segment through the fp32 CPU flash kernel, on bf16 inputs, keeping bf16 for backward.

    Autograd through upcast inputs keeps fp32 copies of queries, keys, values and the output (6 KB per
    token and layer on SmolLM2); this keeps the bf16 inputs, the bf16 output it returns (the output
    projection's input, kept there anyway) and the log-sum-exp, and casts up again in backward. The
    forward is the fp32 kernel's rounded to bf16 bit for bit; backward reads the bf16-rounded output."""

    @staticmethod
    def forward(ctx, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cuts: list[int],
                scale: float | None) -> torch.Tensor:
        batch, heads, tokens, dim = query.shape
        output = query.new_empty(batch, tokens, heads, dim)  # the layout the attention interface returns
        logsumexp = query.new_empty(batch, heads, tokens, dtype=torch.float32)
        for a, b in zip(cuts[:-1], cuts[1:]):
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query[:, :, a:b].float(), key[:, :, a:b].float(), value[:, :, a:b].float(), 0.0, True, scale=scale)
            output[:, a:b] = out.transpose(1, 2)
            logsumexp[:, :, a:b] = lse
        ctx.save_for_backward(query, key, value, output, logsumexp)
        ctx.cuts, ctx.scale = cuts, scale
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        query, key, value, output, logsumexp = ctx.saved_tensors
        grads = [torch.empty_like(t) for t in (query, key, value)]
        for a, b in zip(ctx.cuts[:-1], ctx.cuts[1:]):
            parts = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad[:, a:b].transpose(1, 2).float(), query[:, :, a:b].float(), key[:, :, a:b].float(),
                value[:, :, a:b].float(), output[:, a:b].transpose(1, 2).float(), logsumexp[:, :, a:b], 0.0, True,
                scale=ctx.scale)
            for full, part in zip(grads, parts):
                full[:, :, a:b] = part
        return *grads, None, None


def _segments_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cuts: list[int],
                        prefixes: list[tuple[int, int]], options: dict[str, Any]) -> torch.Tensor:
    """One causal SDPA call per segment, concatenated along the sequence ([1, heads, tokens, head_dim]).

    `split` rather than slicing: its backward is one concatenation, where each slice's backward
    writes its gradient into a zeroed full-length tensor and the copies are summed."""
    lengths = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
    outputs = []
    for q, k, v, (start, shared) in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2),
                                        prefixes):
        if not shared:
            outputs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, **options))
            continue
        keys = torch.cat([key[:, :, start:start + shared], k], dim=2)
        values = torch.cat([value[:, :, start:start + shared], v], dim=2)
        visible = torch.ones(q.shape[2], shared + q.shape[2], dtype=torch.bool, device=q.device).tril(shared)
        outputs.append(F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, **options))
    return torch.cat(outputs, dim=2)


def register() -> str:
    """Make `attn_implementation="packed_sdpa"` available to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def packed_kwargs(lengths: list[int]) -> dict[str, Any]:
    """Flash-attention style boundaries of the examples in one packed row."""
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    longest = max(lengths)
    return {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": longest, "max_length_k": longest}
