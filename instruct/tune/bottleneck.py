"""Bottleneck adapters and UniPELT: small modules inserted into a frozen decoder.

- `houlsby` (Houlsby et al. 2019): a serial adapter after the attention block and after the MLP.
- `pfeiffer` (Pfeiffer et al. 2021): a serial adapter after the MLP only.
- `parallel_adapter` (He et al. 2022): an adapter beside the MLP, its output scaled by s.
- `unipelt` (Mao et al. 2022): LoRA on W_q and W_v, a prefix on keys/values and an adapter after
  the MLP, each behind a learned sigmoid gate. The prefix is written in He et al.'s unified view
  (prefix tuning = attention over the prefix, added to the head outputs before W_o), so it needs
  no change to the attention kernel and works on packed rows, padded batches and generation
  alike; its queries are W_q's outputs before the rotary embedding (the prefix has no position).

Every up-projection (LoRA's B, the prefix values) starts at zero, so training starts from the
base model exactly. AdapterHub's `adapters` pins transformers 4, hence our own modules; the
saved folder holds `bottleneck_adapter.json` (kind, sizes, base model) and the trained weights.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from instruct.config import ConfigError, from_dict
from instruct.tune.layers import decoder_layers

CONFIG_NAME = "bottleneck_adapter.json"
WEIGHTS_NAME = "bottleneck_adapter.safetensors"
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
MARKERS = ("adapter", "lora_", "unipelt_prefix")  # in the names of the parameters we add, never in a base's


class Bottleneck(nn.Module):
    """x -> up(act(down(x))), up initialised to zero."""

    def __init__(self, size: int, reduction: int, activation: str) -> None:
        super().__init__()
        hidden = max(1, size // reduction)
        self.down = nn.Linear(size, hidden)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(hidden, size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class Gate(nn.Module):
    """UniPELT's gate: sigmoid(W x + b), one value per token."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.proj(x))


class SerialAdapter(nn.Module):
    """y = f(x); y + [gate(y) *] adapter(y)."""

    def __init__(self, inner: nn.Module, size: int, reduction: int, activation: str, gated: bool) -> None:
        super().__init__()
        self.inner = inner
        self.adapter = Bottleneck(size, reduction, activation)
        self.adapter_gate = Gate(size) if gated else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        delta = self.adapter(y)
        return y + (delta * self.adapter_gate(y) if self.adapter_gate is not None else delta)


class ParallelAdapter(nn.Module):
    """y = f(x) + s * adapter(x)."""

    def __init__(self, inner: nn.Module, size: int, reduction: int, activation: str, scale: float) -> None:
        super().__init__()
        self.inner = inner
        self.adapter = Bottleneck(size, reduction, activation)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.scale * self.adapter(x)


class GatedLoRA(nn.Module):
    """W x + gate(x) * (alpha / r) * B A x, B initialised to zero (UniPELT's LoRA).

    Keeps its last output: on W_q it is the query the layer's prefix attends with.
    """

    def __init__(self, inner: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.inner = inner
        self.lora_down = nn.Linear(inner.in_features, r, bias=False)
        self.lora_up = nn.Linear(r, inner.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.lora_gate = Gate(inner.in_features)
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_output = self.inner(x) + self.lora_gate(x) * self.scaling * self.lora_up(self.lora_down(x))
        return self.last_output


class GatedPrefix(nn.Module):
    """W_o(h + gate(q) * softmax(q P_k^T / sqrt(d)) P_v): a layer's learned prefix, behind a gate.

    P_v starts at zero, so the layer starts as the base (He et al. 2022, eq. 7, with a learned gate).
    """

    def __init__(self, o_proj: nn.Module, query_source: GatedLoRA, heads: int, kv_heads: int, head_dim: int,
                 length: int) -> None:
        super().__init__()
        self.inner = o_proj
        self.query_source = [query_source]  # a list: not a submodule of ours (it lives at q_proj)
        self.unipelt_prefix_key = nn.Parameter(torch.randn(kv_heads, length, head_dim) * 0.02)
        self.unipelt_prefix_value = nn.Parameter(torch.zeros(kv_heads, length, head_dim))
        self.unipelt_prefix_gate = Gate(heads * head_dim)
        self.heads, self.head_dim = heads, head_dim

    def forward(self, heads_out: torch.Tensor) -> torch.Tensor:
        query = self.query_source[0].last_output  # [batch, tokens, heads * dim]
        batch, tokens, _ = query.shape
        q = query.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        groups = self.heads // self.unipelt_prefix_key.shape[0]
        key = self.unipelt_prefix_key.repeat_interleave(groups, 0).to(q.dtype)
        value = self.unipelt_prefix_value.repeat_interleave(groups, 0).to(q.dtype)
        weights = torch.softmax(q @ key.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        prefix = (weights @ value).transpose(1, 2).reshape(batch, tokens, -1)
        return self.inner(heads_out + self.unipelt_prefix_gate(query) * prefix)


def inject(model: nn.Module, method: Any) -> nn.Module:
    """Freeze `model` and insert the adapters of `method.name` into every decoder block."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    size = model.config.hidden_size
    build = lambda inner: SerialAdapter(inner, size, method.reduction_factor, method.non_linearity,  # noqa: E731
                                        gated=method.name == "unipelt")
    for layer in decoder_layers(model):
        attention, mlp = _child(layer, "self_attn"), _child(layer, "mlp")
        if method.name == "houlsby":
            attention.o_proj = build(attention.o_proj)
        if method.name in ("houlsby", "pfeiffer", "unipelt"):
            mlp.down_proj = build(mlp.down_proj)
        elif method.name == "parallel_adapter":
            layer.mlp = ParallelAdapter(mlp, size, method.reduction_factor, method.non_linearity,
                                        method.adapter_scaling)
        if method.name == "unipelt":
            attention.q_proj = GatedLoRA(attention.q_proj, method.r, method.alpha)
            attention.v_proj = GatedLoRA(attention.v_proj, method.r, method.alpha)
            config = model.config
            head_dim = getattr(config, "head_dim", None) or size // config.num_attention_heads
            attention.o_proj = GatedPrefix(attention.o_proj, attention.q_proj, config.num_attention_heads,
                                           config.num_key_value_heads, head_dim, method.num_virtual_tokens)
    device = next(model.parameters()).device
    for name, parameter in model.named_parameters():
        if any(marker in name for marker in MARKERS):
            parameter.data = parameter.data.to(device=device, dtype=torch.float32)
            parameter.requires_grad_(True)
    return model


def _child(layer: nn.Module, name: str) -> nn.Module:
    child = getattr(layer, name, None)
    if child is None:
        raise ConfigError(f"bottleneck adapters: decoder block {type(layer).__name__} has no {name!r} "
                          "(Llama-family models are supported)")
    return child


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if any(m in n for m in MARKERS)}


def save(model: nn.Module, folder: str | Path, method: Any, base: str) -> None:
    """Write the added weights and what is needed to rebuild them on `base`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model), str(folder / WEIGHTS_NAME))
    config = {"kind": method.name, "method": asdict(method), "base_model_name_or_path": base}
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def is_bottleneck(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_NAME).is_file()


def load(folder: str | Path, model: str | Path | None,
         load_base: Callable[[str | Path | None], tuple[nn.Module, Any]]) -> tuple[nn.Module, Any]:
    """(model with the adapter, tokenizer) for eval and serving; `model` overrides the recorded base."""
    from transformers import AutoTokenizer

    from instruct.tune.config import MethodConfig

    folder = Path(folder)
    saved = json.loads((folder / CONFIG_NAME).read_text())
    method = from_dict(MethodConfig, saved["method"], str(folder / CONFIG_NAME))
    base, tokenizer = load_base(model if model is not None else saved["base_model_name_or_path"])
    inject(base, method)
    missing = set(adapter_state(base)) - set(weights := load_file(str(folder / WEIGHTS_NAME)))
    if missing:
        raise ConfigError(f"{folder / WEIGHTS_NAME}: missing {len(missing)} adapter weights, e.g. {sorted(missing)[0]}")
    base.load_state_dict(weights, strict=False)
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return base.eval(), tokenizer
