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
    cuts = bounds.tolist()
    prefixes = kwargs.get("segment_prefix")
    prefixes = prefixes.tolist() if prefixes is not None else [(a, 0) for a in cuts[:-1]]
    options = {"dropout_p": dropout if module.training else 0.0, "scale": scaling, "enable_gqa": gqa}
    outputs = []
    for a, b, (start, shared) in zip(cuts[:-1], cuts[1:], prefixes):
        if not shared:
            outputs.append(F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b],
                                                          is_causal=True, **options))
            continue
        keys = torch.cat([key[:, :, start:start + shared], key[:, :, a:b]], dim=2)
        values = torch.cat([value[:, :, start:start + shared], value[:, :, a:b]], dim=2)
        visible = torch.ones(b - a, shared + b - a, dtype=torch.bool, device=query.device).tril(shared)
        outputs.append(F.scaled_dot_product_attention(query[:, :, a:b], keys, values, attn_mask=visible, **options))
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


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
