"""Checkpoints that resume exactly: trainable weights, optimizer, scheduler, every RNG, the step.

The data order needs no state: micro-batch k is a pure function of the seed (packing.BatchPlan),
so restoring the step restores the position in the data. A checkpoint folder is written under
a temporary name and renamed, so a kill mid-save leaves the previous checkpoint intact.

Nothing loaded can run code: weights are safetensors, and `optimizer.pt` holds only tensors,
numbers and strings (the NumPy RNG state is stored as a tensor), read with `weights_only=True`.
A run resumes only the run it continues: `checkpoints/run.json` records the config and data
fingerprint, and a different one is refused with one line unless `train.resume=force`.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from instruct.config import ConfigError
from instruct.io.shards import created_mode, fsync_dir, fsync_files

PREFIX = "step-"
RUN_RECORD = "run.json"
METHOD_FILE = "method_state.safetensors"
# keys that do not change what training computes: a resume may differ in them
NOT_IDENTITY = {"output", "merge", "train.resume", "train.threads", "train.keep_checkpoints", "train.save_every",
                "train.log_every", "train.eval_every", "train.memory_budget", "train.report_to",  # resources, reporting
                "train.fsdp.cpu_offload", "train.fsdp.reshard_after_forward"}  # where FSDP keeps shards, not the math


def checkpoint_root(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def latest_checkpoint(output: str | Path) -> Path | None:
    root = checkpoint_root(output)
    found = sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.json").is_file()) if root.is_dir() else []
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """Every RNG as tensors and plain numbers (loadable with weights_only=True)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(output: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: dict[str, Any], keep: int,
                    method_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Trainable weights, optimizer, schedule, RNG and `state`; `method_tensors`: a method's own statistics
    (AdaLoRA's importance averages), restored by `load_method_tensors`."""
    root = checkpoint_root(output)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{PREFIX}{step:07d}"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    os.chmod(staging, created_mode(folder=True))
    try:
        save_file(trainable_state(model), str(staging / "trainable.safetensors"))
        if method_tensors:
            save_file({k: t.contiguous() for k, t in method_tensors.items()}, str(staging / METHOD_FILE))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
                   staging / "optimizer.pt")
        publish(staging, target, {**state, "step": step}, keep)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def publish(staging: Path, target: Path, state: dict[str, Any], keep: int) -> None:
    """Write state.json last, flush, rename `staging` onto `target` and keep the newest `keep` checkpoints."""
    (staging / "state.json").write_text(json.dumps(state, indent=2))
    fsync_files(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    fsync_dir(target.parent)
    for old in sorted(target.parent.glob(f"{PREFIX}*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restore everything saved at `path`; returns its state.json (with `step`)."""
    weights = load_file(str(path / "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    missing = sorted(set(weights) - set(parameters))
    if missing:
        raise ConfigError(f"{path}: checkpoint does not match this model/method (e.g. {missing[0]})")
    wrong = [name for name, tensor in weights.items() if tensor.shape != parameters[name].shape]
    if wrong:
        raise ConfigError(f"{path}: checkpoint does not match this method's shapes ({wrong[0]}: "
                          f"{tuple(weights[wrong[0]].shape)} saved, {tuple(parameters[wrong[0]].shape)} now; "
                          "was method.r changed?)")
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    saved = load_plain(path / "optimizer.pt", path)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    return json.loads((path / "state.json").read_text())


def load_method_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The method statistics saved with the checkpoint at `path` (empty when it has none)."""
    file = path / METHOD_FILE
    return load_file(str(file)) if file.is_file() else {}


def load_plain(file: Path, checkpoint: Path) -> dict[str, Any]:
    """A torch.save'd file of tensors, numbers and strings; anything that would import code is refused."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError) as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        what = f"it would import {found[1]}" if found else type(error).__name__
        raise ConfigError(f"{file}: refused to load: it holds more than tensors and numbers "
                          f"({what}); delete {checkpoint} or set train.resume=false") from None


def run_fingerprint(config: Any, world: int = 1) -> dict[str, Any]:
    """The config keys that decide training, flattened, and a fingerprint of the data files.

    `train.grad_accum` is recorded as the micro-batches of a whole step (x `world` processes): a run
    resumes on another number of processes when its steps stay the same."""
    from instruct.pipeline.manifest import fingerprint

    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        elif prefix not in NOT_IDENTITY:
            flat[prefix] = value

    walk("", asdict(config))
    if isinstance(flat.get("train.grad_accum"), int):
        flat["train.grad_accum"] *= world
    data = [fingerprint(p) for p in (config.data.path, config.data.eval_path) if p]
    flat["data files"] = hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=16
                                         ).hexdigest()
    return json.loads(json.dumps(flat, default=str))


def resume_checkpoint(config: Any, output: str | Path, main: bool = True, world: int = 1) -> Path | None:
    """The checkpoint to continue from, or None to start over (then old checkpoints are removed).

    A checkpoint made under another config or other data is refused with one line naming what
    changed, unless `train.resume` is "force"."""
    root = checkpoint_root(output)
    current = run_fingerprint(config, world)
    latest = latest_checkpoint(output) if config.train.resume else None
    if latest is None:
        if main:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
            (root / RUN_RECORD).write_text(json.dumps(current, indent=2, sort_keys=True))
        return None
    record = root / RUN_RECORD
    saved = json.loads(record.read_text()) if record.is_file() else {}
    changed = sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
    if changed and config.train.resume != "force":
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" if k != "data files" else "the data"
                          for k in changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise ConfigError(f"{output}: holds a run with another config ({shown if saved else 'unrecorded'}); "
                          "use another --output, train.resume=false to start over or train.resume=force")
    return latest
