"""Silence third-party lines that say nothing to an instruct user, on every run.

Each filter names one message and its source, so anything else (a real warning) still shows:
bitsandbytes logs that an optional `kernels` package is missing (its CPU fallback is used, and
QLoRA on CPU is not a path instruct takes), and `kernels` itself, offline, that it skips a trust check
for the hub kernel bitsandbytes then fails to find; peft asks transformers for a renamed property, which
warns of its own deprecation.
"""
from __future__ import annotations

import logging
import warnings

# (logger, the start of the one message dropped from it)
_LINES = (("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
          ("kernels._internals.hf_hub", "Skipping publisher trust check for 'kernels-community/"))


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_third_party() -> None:
    """Install the filters (idempotent: logging and warnings filters are matched, not stacked)."""
    for name, prefix in _LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
