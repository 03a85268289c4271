"""FSDP2 for the tune loop: each decoder block and the root shard their weights, gradients and optimizer
state over the processes of a torchrun / accelerate launch (`train.fsdp`).

A block's weights are gathered just before its forward (and again in backward) and freed after, so a
process holds 1/N of the model plus one block at a time, where DDP holds the whole model, its
gradients and both AdamW moments on every process. Gradients are reduce-scattered as averages,
exactly as DDP all-reduces them, so the loop's loss normalisation (trained tokens of the whole
step) is the same for both. One process has nothing to shard: the model stays as it is, and only
the checkpoint format (sharded, see checkpoint.py) says the run is an FSDP run, so it resumes on N.
"""
from __future__ import annotations

import torch
from torch import nn

from instruct.tune.config import FSDPConfig
from instruct.tune.layers import decoder_layers

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def shard_model(model: nn.Module, settings: FSDPConfig, compute_dtype: torch.dtype, device: torch.device,
                world: int) -> nn.Module:
    """`fully_shard` every decoder block, then the root (embeddings, final norm, LM head: tied weights stay
    together); the model is changed in place and returned. A run of one process is returned as it is."""
    if world == 1:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    gathered = compute_dtype if settings.param_dtype == "auto" else DTYPES[settings.param_dtype]
    policy = MixedPrecisionPolicy(param_dtype=None if gathered == torch.float32 else gathered,
                                  reduce_dtype=DTYPES[settings.reduce_dtype])
    offload = CPUOffloadPolicy(pin_memory=device.type == "cuda") if settings.cpu_offload else OffloadPolicy()
    mesh = init_device_mesh(device.type, (world,))
    for block in decoder_layers(model):
        fully_shard(block, mesh=mesh, mp_policy=policy, offload_policy=offload,
                    reshard_after_forward=settings.reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy, offload_policy=offload)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def reshard(model: nn.Module) -> None:
    """Free what a forward without backward (eval) left gathered: the root keeps its weights gathered after
    forward for the backward that follows; without one, training would accumulate gradients into that
    stale gathered copy and never reduce them (the tied embedding/head got none)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def full_state_dict(model: nn.Module, trainable_only: bool) -> dict[str, torch.Tensor]:
    """Every process gathers, the main process gets the whole state dict on CPU (the others an empty one):
    what `save_pretrained` writes as a plain folder (an adapter needs only its trainable weights)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=trainable_only)
    state = get_model_state_dict(model, options=options)
    # a tied weight comes back under both names as two tensors: keep the name `named_parameters` keeps
    # (the embedding), as an unsharded save_pretrained does
    names = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    return {name: tensor for name, tensor in state.items() if name in names}


def as_float(norm: torch.Tensor) -> float:
    """clip_grad_norm_'s result as a number: over sharded (DTensor) gradients it is itself a DTensor."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
