"""Sharded checkpoints of an FSDP run (torch.distributed.checkpoint, DCP): every process writes its own
shard of the trainable weights and AdamW moments, and a checkpoint written by N processes loads on M
(DCP reads, for each process, the slices of the saved global tensors its shards cover).

The layout, inside the same `checkpoints/step-NNNNNNN/` folders as checkpoint.py's:
    dcp/           the DCP folder: trainable weights ("model.*") and optimizer state ("optimizer.*"), tensors only
    rank-RRRRR.pt  per process: scheduler, every RNG, the optimizer's param groups (tensors/numbers/strings)
    state.json     written last by the main process: a folder without it is not a checkpoint
All processes write into one staging folder that the main process renames into place once every
process is done, so a kill mid-save leaves the previous checkpoint whole, as for unsharded runs.

Nothing loaded runs code: tensors and per-process files load with `weights_only=True`, and DCP's
metadata (a pickle) is read through an unpickler that admits only DCP's own metadata classes.
"""
from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import CheckpointException, FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from instruct.config import ConfigError
from instruct.tune.checkpoint import PREFIX, checkpoint_root, load_plain, publish, rng_state, set_rng_state

SHARDED = "dcp"
# what DCP's .metadata pickle may name: its metadata records, torch.Size, dtypes and layouts, a path
METADATA_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")
METADATA_NAMES = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
                  ("pathlib", "Path")}


def is_sharded_checkpoint(path: Path) -> bool:
    return (path / SHARDED).is_dir()


def save_sharded_checkpoint(output: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                            scheduler: Any, state: dict[str, Any], keep: int, rank: int) -> Path:
    """Called by every process of the run (one process: no process group needed)."""
    root = checkpoint_root(output)
    target = root / f"{PREFIX}{step:07d}"
    staging = root / f".{target.name}.sharded"  # one name all processes agree on
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    try:
        tensors, groups = _sharded_state(model, optimizer)
        with _single_process_quiet():
            dcp.save(tensors, storage_writer=dcp.FileSystemWriter(staging / SHARDED), no_dist=_world() == 1)
        torch.save({"scheduler": scheduler.state_dict(), "rng": rng_state(), "param_groups": groups},
                   staging / f"rank-{rank:05d}.pt")
        _barrier()
        if rank == 0:
            publish(staging, target, {**state, "step": step, "processes": _world()}, keep)
    finally:
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
    _barrier()
    return target


def load_sharded_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                            rank: int) -> dict[str, Any]:
    """Restore `path` into this process's shards, on any number of processes; returns its state.json."""
    own = path / f"rank-{rank:05d}.pt"  # a process the saving run did not have continues rank 0's RNG
    extra = load_plain(own if own.is_file() else path / "rank-00000.pt", path)
    tensors, _ = _sharded_state(model, optimizer)
    reader = MetadataCheckedReader(path / SHARDED)
    reader.read_metadata()  # a refused pickle fails here with its own message (DCP would swallow it and fall back)
    try:
        with _single_process_quiet():
            dcp.load(tensors, storage_reader=reader, no_dist=_world() == 1)
    except CheckpointException as error:  # every process's failure, one per rank
        reason = str(error).strip().splitlines()[-1][:200]
        raise ConfigError(f"{path}: sharded checkpoint does not match this model/method ({reason})") from None
    set_state_dict(model, optimizer, model_state_dict=tensors["model"],
                   optim_state_dict={"state": tensors["optimizer"], "param_groups": extra["param_groups"]},
                   options=StateDictOptions(ignore_frozen_params=True, strict=False))
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return json.loads((path / "state.json").read_text())


def _sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], list[dict]]:
    """({"model": trainable weights, "optimizer": per-parameter state}, param groups), keyed by parameter
    name (so any sharding maps onto any other); DCP gets tensors only, the groups go to rank-RRRRR.pt."""
    weights, optim = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}  # not a frozen alias (tied head)
    return ({"model": {k: v for k, v in weights.items() if k in trained}, "optimizer": optim["state"]},
            optim["param_groups"])


def _world() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


@contextlib.contextmanager
def _single_process_quiet() -> Iterator[None]:
    """DCP warns on every call without a process group that it assumes one process: that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


class _MetadataUnpickler(pickle.Unpickler):
    """Admits DCP's own metadata classes, torch.Size, dtypes, the layout lookup and paths; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        found = getattr(sys.modules.get(module), name, None) if "." not in name else None
        own_class = module in METADATA_MODULES and isinstance(found, type) and found.__module__ == module
        dtype = module == "torch" and isinstance(found, torch.dtype)
        if not (own_class or dtype or (module, name) in METADATA_NAMES):
            raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a DCP metadata record")
        return super().find_class(module, name)


class MetadataCheckedReader(FileSystemReader):
    """DCP's file reader, with its metadata read through the restricted unpickler."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as handle:
            try:
                metadata = _MetadataUnpickler(handle).load()
            except pickle.UnpicklingError as error:
                raise ConfigError(f"{path}: refused to load: {error}") from None
            except (EOFError, AttributeError, TypeError, ValueError) as error:  # cut short or not a pickle
                raise ConfigError(f"{path}: not a readable DCP metadata file ({type(error).__name__}); "
                                  "delete its checkpoint or set train.resume=false") from None
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata
