"""Input globs, `**` included, that terminate on symlink loops and name each file once.

`glob.glob(recursive=True)` follows directory symlinks without memory: a loop yields every
file once per trip around it (41 copies), two loops never end. Here `**` enters each real
directory once (by device and inode), and matches reached through several links are kept
once, under a path without links where there is one. Otherwise it matches like glob: `*`, `?`, `[]`
within one component, hidden names only when the pattern names them.
"""
from __future__ import annotations

import fnmatch
import glob
import os
from typing import Iterator


def expand_glob(pattern: str) -> list[str]:
    """Sorted matches of one pattern, each real file once."""
    pattern = os.path.expanduser(pattern)
    matches = _recursive(pattern) if "**" in pattern else glob.glob(pattern)
    return unique_real_paths(matches)


def unique_real_paths(paths: list[str]) -> list[str]:
    """Sorted, one path per real file (symlinks and `a/../a` collapse): the link-free one, else the first."""
    seen: dict[str, str] = {}
    for path in sorted(dict.fromkeys(paths)):
        real = os.path.realpath(path)
        if real not in seen or (os.path.abspath(path) == real != os.path.abspath(seen[real])):
            seen[real] = path
    return sorted(seen.values())


def _recursive(pattern: str) -> list[str]:
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not glob.has_magic(parts[fixed]):
        fixed += 1
    root = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else "")
    if root and not os.path.isdir(root):
        return []
    return list(_match(root, [p for p in parts[fixed:] if p], set()))


def _match(folder: str, parts: list[str], entered: set[tuple[int, int, int]]) -> Iterator[str]:
    if not parts:
        yield folder
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        if not _enter(folder, len(parts), entered):
            return
        if rest:
            yield from _match(folder, rest, entered)
        else:
            yield folder
        names = _names(folder, "*")  # real folders before links to them: a link-free path wins where there is one
        for name in sorted(names, key=lambda n: os.path.islink(os.path.join(folder, n))):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                yield from _match(path, parts, entered)
            elif not rest:
                yield path
        return
    for name in _names(folder, head):
        path = os.path.join(folder, name)
        if not rest:
            yield path
        elif os.path.isdir(path):
            yield from _match(path, rest, entered)


def _enter(folder: str, position: int, entered: set[tuple[int, int, int]]) -> bool:
    """True the first time a real directory is walked by the `**` at this position of the pattern."""
    try:
        stat = os.stat(folder or ".")
    except OSError:
        return False
    key = (stat.st_dev, stat.st_ino, position)
    if key in entered:
        return False
    entered.add(key)
    return True


def _names(folder: str, pattern: str) -> list[str]:
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    if not glob.has_magic(pattern):
        return [pattern] if pattern in names else []
    hidden = pattern.startswith(".")
    return [n for n in names if (hidden or not n.startswith(".")) and fnmatch.fnmatchcase(n, pattern)]
