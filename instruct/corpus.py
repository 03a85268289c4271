"""Real text that every machine has: the docstrings and sources of the Python standard library.

Tests, samples and benchmarks derive their inputs from here instead of committing third-party
text. The order is deterministic for a given Python installation.
"""
from __future__ import annotations

import ast
import os
import sysconfig
from pathlib import Path
from typing import Iterator


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


SKIPPED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3"}


def stdlib_sources(limit: int | None = None) -> Iterator[Path]:
    """Stdlib .py files in sorted order, never descending into tests or site-packages."""
    root = stdlib_root()
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(f for f in files if f.endswith(".py")):
            yield Path(folder) / name
            count += 1
            if limit is not None and count >= limit:
                return


def stdlib_docstrings(min_words: int = 20, limit: int | None = None) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) for modules, classes and functions with substantial docs."""
    count = 0
    for path in stdlib_sources():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(path.relative_to(stdlib_root()).with_suffix("").parts)
        nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        for node in nodes:
            doc = ast.get_docstring(node)
            if doc and len(doc.split()) >= min_words:
                yield (module if node is tree else f"{module}.{node.name}"), doc
                count += 1
                if limit is not None and count >= limit:
                    return
