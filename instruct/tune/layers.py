"""Where a causal LM keeps its transformer blocks: the one question adapters, freezing and FSDP
wrapping all ask of a model (so `bottleneck` and `methods` need not ask each other)."""
from __future__ import annotations

from torch import nn

from instruct.config import ConfigError


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the model."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError("method freeze: cannot find the decoder layers of this model")
    return max(lists, key=len)
