"""Micro-batches: which examples go together (a deterministic plan) and how they become tensors.

Packed: examples share one row with position ids restarting at 0 for each example, no
padding and no attention mask, plus the flash-attention style example boundaries
(`cu_seq_lens_q/k`). No token attends across examples on any attention implementation:
`packed_sdpa` and flash-attention cut the row at the boundaries; for sdpa/eager/flex,
transformers 5 (`masking_utils.find_packed_sequence_indices`) turns the restarting position
ids into a block-diagonal causal mask, which needs `attention_mask=None` and no KV cache
(`loop.loss_sum` passes `use_cache=False`). tests/test_tune_packing.py proves the packed loss
equals the unpacked one on each.
Padded (for prompt/prefix tuning, whose virtual tokens prefix each sequence): examples padded
to the longest in the micro-batch.

The plan is a pure function of (lengths, budget, seed, epoch, groups), so a resumed run sees
exactly the data order of an uninterrupted one. `groups` (the source of each row) keeps every
micro-batch to one source, so a mixed set (documents replayed during SFT) reports its loss per
source at no extra cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from instruct.tune.attention import packed_kwargs
from instruct.tune.data import IGNORE, TokenizedSet

MAX_OPEN_BINS = 64


def plan_epoch(lengths: np.ndarray, budget: int, pack: bool, seed: int, epoch: int,
               groups: np.ndarray | None = None) -> list[list[int]]:
    """Shuffle with (seed, epoch), then group example indices into micro-batches of <= `budget` tokens,
    each holding rows of one group only."""
    order = np.random.default_rng([seed, epoch]).permutation(len(lengths))
    groups = np.zeros(len(lengths), dtype=np.int64) if groups is None else np.asarray(groups)
    return _first_fit(lengths, order, budget, groups) if pack else _padded_groups(lengths, order, budget, groups)


def _first_fit(lengths: np.ndarray, order: np.ndarray, budget: int, groups: np.ndarray) -> list[list[int]]:
    """First-fit bin packing over a bounded window of open bins; bins come out in creation order."""
    closed: list[tuple[int, list[int]]] = []
    open_bins: list[tuple[int, list[int], list[int]]] = []  # (created, [used], members)
    created = 0
    for index in order:
        size = int(lengths[index])
        for _, used, members in open_bins:
            if used[0] + size <= budget and groups[members[0]] == groups[index]:
                used[0] += size
                members.append(int(index))
                break
        else:
            if len(open_bins) >= MAX_OPEN_BINS:  # close the fullest bin to bound the work per example
                fullest = max(range(len(open_bins)), key=lambda i: open_bins[i][1][0])
                done = open_bins.pop(fullest)
                closed.append((done[0], done[2]))
            open_bins.append((created, [size], [int(index)]))
            created += 1
    closed += [(c, members) for c, _, members in open_bins]
    return [members for _, members in sorted(closed)]


def _padded_groups(lengths: np.ndarray, order: np.ndarray, budget: int, groups: np.ndarray) -> list[list[int]]:
    batches: list[tuple[int, list[int]]] = []  # (first position in the order, members)
    current: dict[int, tuple[int, list[int], list[int]]] = {}  # group -> (first position, [longest], members)
    for position, index in enumerate(order):
        size, group = int(lengths[index]), int(groups[index])
        first, longest, members = current.get(group, (position, [0], []))
        if members and max(longest[0], size) * (len(members) + 1) > budget:
            batches.append((first, members))
            first, longest, members = position, [0], []
        members.append(int(index))
        longest[0] = max(longest[0], size)
        current[group] = (first, longest, members)
    batches += [(first, members) for first, _, members in current.values() if members]
    return [members for _, members in sorted(batches)]


class BatchPlan:
    """The endless sequence of micro-batches over epochs; micro-batch k is the same in every run."""

    def __init__(self, lengths: np.ndarray, budget: int, pack: bool, seed: int, groups: np.ndarray | None = None):
        self.lengths, self.budget, self.pack, self.seed, self.groups = lengths, budget, pack, seed, groups
        self._epochs: list[list[list[int]]] = []
        self._starts: list[int] = [0]

    def epoch(self, number: int) -> list[list[int]]:
        while len(self._epochs) <= number:
            planned = plan_epoch(self.lengths, self.budget, self.pack, self.seed, len(self._epochs), self.groups)
            self._epochs.append(planned)
            self._starts.append(self._starts[-1] + len(planned))
        return self._epochs[number]

    def micro_batch(self, k: int) -> tuple[int, list[int]]:
        """(epoch, example indices) of global micro-batch `k`."""
        epoch = 0
        while True:
            batches = self.epoch(epoch)
            if k < self._starts[epoch + 1]:
                return epoch, batches[k - self._starts[epoch]]
            epoch += 1

    def micro_batches_for(self, epochs: float) -> int:
        whole = int(epochs)
        count = sum(len(self.epoch(e)) for e in range(whole))
        return count + int(round((epochs - whole) * len(self.epoch(whole)))) if epochs > whole else count


@dataclass
class Batch:
    """Tensors for one forward pass; `trained` counts the target tokens it contributes, `group` its source."""

    inputs: dict[str, Any]
    targets: torch.Tensor
    tokens: int
    trained: int
    group: int = 0

    def to(self, device: torch.device) -> "Batch":
        return Batch({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.inputs.items()},
                     self.targets.to(device),
                     self.tokens, self.trained, self.group)


def collate(data: TokenizedSet, indices: list[int], pack: bool, pad_id: int = 0) -> Batch:
    """Packed: one row, position ids restarting per example. Padded: right-padded rows + attention mask
    (pad ids are masked out of attention and loss, so their value never matters)."""
    ids = [data.input_ids[i] for i in indices]
    targets = [data.targets[i] for i in indices]
    tokens = sum(len(x) for x in ids)
    trained = int(sum((t != IGNORE).sum() for t in targets))
    group = int(data.groups[indices[0]]) if data.sources else 0
    if pack:
        inputs = {"input_ids": torch.from_numpy(np.concatenate(ids))[None],
                  "position_ids": torch.from_numpy(np.concatenate([np.arange(len(x)) for x in ids]))[None],
                  **packed_kwargs([len(x) for x in ids])}
        return Batch(inputs, torch.from_numpy(np.concatenate(targets))[None], tokens, trained, group)
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    padded_targets = torch.full((len(ids), width), IGNORE, dtype=torch.long)
    for row, (x, t) in enumerate(zip(ids, targets)):
        input_ids[row, : len(x)] = torch.from_numpy(x)
        mask[row, : len(x)] = 1
        padded_targets[row, : len(t)] = torch.from_numpy(t)
    return Batch({"input_ids": input_ids, "attention_mask": mask}, padded_targets, tokens, trained, group)
