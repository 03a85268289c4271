"""Which dtype training computes in: bf16 autocast where the hardware has bf16 units, fp32 otherwise.

Master weights, optimizer state and the loss stay fp32 whatever is chosen; only the matmuls (and
the frozen base of an adapter method) run in bf16.
"""
from __future__ import annotations

import torch


def cpu_bf16_units() -> str | None:
    """The CPU's bf16 matmul units as torch sees them (AVX512-BF16 or AMX), None without either."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512-BF16"
    return None


def training_dtype(setting: str, device: torch.device) -> tuple[torch.dtype, str]:
    """(autocast dtype, why): `auto` picks bf16 on bf16 GPUs and on CPUs with AVX512-BF16 or AMX."""
    if setting in ("bf16", "fp32"):
        return (torch.bfloat16 if setting == "bf16" else torch.float32), f"train.dtype={setting}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: the GPU has bf16"
        return torch.float32, "auto: the GPU has no bf16"
    units = cpu_bf16_units()
    if units:
        return torch.bfloat16, f"auto: the CPU has {units}"
    return torch.float32, "auto: the CPU has no bf16 units (AVX512-BF16 or AMX)"
