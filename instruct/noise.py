"""Silence third-party lines that say nothing to an instruct user, on every run.

Each filter names one message and its source, so anything else (a real warning) still shows:
bitsandbytes logs that an optional `kernels` package is missing (its CPU fallback is used, and
QLoRA on CPU is not a path instruct takes); peft asks transformers for a renamed property, which
warns of its own deprecation.
"""
from __future__ import annotations

import logging
import warnings

_KERNELS_LINE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_third_party() -> None:
    """Install the filters (idempotent: logging and warnings filters are matched, not stacked)."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(_KERNELS_LINE))
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
