"""The `instruct samples` inputs, generated once per test process (a few seconds) and shared.

A plain cached function rather than a fixture, so that every test module reuses one copy.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from instruct.samples import generate


@functools.cache
def sample_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="instruct-samples-"))
    atexit.register(shutil.rmtree, root, True)
    generate(root / "generated")
    return root / "generated"
