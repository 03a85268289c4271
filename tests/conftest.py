"""Shared fixtures: real text from the stdlib, tmp output folders."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("INSTRUCT_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def docstrings() -> list[tuple[str, str]]:
    """(name, docstring) pairs of real English prose from the Python stdlib."""
    from instruct.corpus import stdlib_docstrings

    return list(stdlib_docstrings(limit=1500))
