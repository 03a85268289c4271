"""Shared fixtures: real text from the stdlib, tmp output folders."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("INSTRUCT_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_TORCH_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _default_torch_threads():
    """An in-process engine (`threads=1`) or `train.threads` sets torch's thread count for the whole
    process: every later test would train on one thread. Each test starts from the default."""
    yield
    if torch.get_num_threads() != DEFAULT_TORCH_THREADS:
        torch.set_num_threads(DEFAULT_TORCH_THREADS)


@pytest.fixture(scope="session")
def docstrings() -> list[tuple[str, str]]:
    """(name, docstring) pairs of real English prose from the Python stdlib."""
    from instruct.corpus import stdlib_docstrings

    return list(stdlib_docstrings(limit=1500))
