"""Preference pairs in, token sequences out: the one loader of PREFERENCE data for reward, DPO and RL prompts.

A pair becomes two sequences, prompt + chosen and prompt + rejected, tokenised by the same
renderer as SFT (so the prompt tokens of both are identical) with targets only on the final
answer: assistant turns inside the prompt are context. A micro-batch packs whole pairs, each
pair as two consecutive sequences with restarting position ids (no attention across them).
With `share_prompt` (packed rows under `packed_sdpa`) the prompt is packed once: the rejected
sequence keeps only its tail after the shared prompt, with positions continuing the prompt's, and
attends to the prompt's keys at the head of the chosen sequence (`segment_prefix`), so both sides
see exactly the context they would alone while the prompt's forward and backward run once.
"""
from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from instruct.config import ConfigError
from instruct.io.readers.base import InputError
from instruct.io.records import json_records
from instruct.io.shards import read_shards, read_table
from instruct.preferences import to_preferences, to_unpaired, validate_preference
from instruct.schema import SchemaError, is_preference_schema, preferences_table
from instruct.tune.attention import packed_kwargs
from instruct.tune.data import IGNORE, TokenizedSet, tokenize_table
from instruct.tune.loss import linear_token_logps, logits_token_logps, trained_outputs
from instruct.tune.packing import Batch, collate


def load_preferences(path: str | Path) -> pa.Table:
    """PREFERENCE shards (a folder or one .arrow file) or JSON(L) in any format `to_preferences` reads."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".arrow":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or shards folder")
        table = read_shards(path) if path.is_dir() else read_table(path)
        if not is_preference_schema(table.schema):
            raise InputError(f"{path}: not PREFERENCE rows (columns {', '.join(table.schema.names)}; "
                             "expected prompt, chosen, rejected)")
        for number, row in enumerate(table.select(["prompt", "chosen", "rejected"]).to_pylist(), 1):
            try:
                validate_preference(row)
            except SchemaError as error:
                raise InputError(f"{path}: row {number}: {error}") from None
        return table
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or shards folder")
    return preferences_table(pair for pairs in json_records(path, to_preferences) for pair in pairs)


def load_unpaired(path: str | Path) -> pa.Table:
    """Unpaired KTO rows (JSON(L) `{prompt, completion, label}`) -> one conversation row per example
    (id, messages, trained_from, label), ready for `tokenize_table`."""
    rows = [*json_records(path, to_unpaired)]
    return pa.table({"id": [r["id"] for r in rows], "messages": [r["prompt"] + r["completion"] for r in rows],
                     "trained_from": [sum(m["role"] == "assistant" for m in r["prompt"]) for r in rows],
                     "label": [r["label"] for r in rows]})


def is_unpaired(path: str | Path) -> bool:
    """Whether `path` is a JSON(L) file of unpaired KTO records (judged by its first record)."""
    from instruct.preferences import detect_preference_format

    path = Path(path)
    if not path.is_file() or path.suffix == ".arrow":
        return False
    try:
        return detect_preference_format(next(iter(json_records(path)))) == "unpaired"
    except (SchemaError, InputError, StopIteration):
        return False


def data_kind(path: str | Path) -> str | None:
    """'PREFERENCE', 'EXAMPLE' or 'DOCUMENT' for shards (from the schema) or JSON(L) (from the first record)."""
    from instruct.io.shards import shard_paths
    from instruct.preferences import detect_preference_format
    from instruct.schema import schema_kind

    path = Path(path)
    if path.is_dir() or path.suffix == ".arrow":
        paths = shard_paths(path) if path.is_dir() else [path]
        return schema_kind(read_table(paths[0]).schema) if paths and paths[0].is_file() else None
    if not path.is_file():
        return None
    try:
        detect_preference_format(next(iter(json_records(path))))
        return "PREFERENCE"
    except (SchemaError, InputError, StopIteration):
        return "EXAMPLE"


@dataclass
class PreferenceSet:
    """Tokenised pairs: `sequences` holds pair i as sequences 2i (chosen) and 2i + 1 (rejected); with
    `labels` (unpaired KTO data) example i is sequence i alone, desirable where labels[i]."""

    ids: list[str]
    sequences: TokenizedSet
    dropped: Counter = field(default_factory=Counter)  # pairs lost, by the reason of their first dropped side
    truncated_prompts: int = 0
    share_prompt: bool = False  # collate packs each pair's prompt once (see the module docstring)
    mismatched: bool = False  # collate adds a mismatched sequence per pair (KTO): the planner counts it
    key: int = field(default_factory=itertools.count().__next__)  # tells this set's pairs from another's
    labels: np.ndarray | None = None  # unpaired: whether each example is desirable

    def __len__(self) -> int:
        return len(self.ids)

    def sides(self, unit: int) -> list[int]:
        """The sequences of pair (or unpaired example) `unit`; the first is the one a mismatched sequence borrows."""
        return [unit] if self.labels is not None else [2 * unit, 2 * unit + 1]

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per pair (both sequences, less the shared prompt when it is shared): what the planner packs."""
        lengths = self.sequences.lengths
        if self.labels is not None:  # one sequence, and KTO's mismatched one of about the same length
            return lengths * 2 if self.mismatched else lengths
        total = lengths[0::2] + lengths[1::2]
        if self.share_prompt:
            total = total - np.array([self.shared_tokens(i) for i in range(len(self))], dtype=total.dtype)
        if self.mismatched:  # about one more chosen sequence (another pair's answer), less its shared prompt
            prompts = np.array([_first_trained(t) for t in self.sequences.targets[0::2]], dtype=total.dtype)
            total = total + lengths[0::2] - (prompts if self.share_prompt else 0)
        return total

    def shared_tokens(self, pair: int) -> int:
        """How many leading tokens both sides of `pair` can share: their common prefix, cut at the first
        trained position of either (that position's logit predicts a different next token on each side)."""
        seq = self.sequences
        chosen, rejected = seq.input_ids[2 * pair], seq.input_ids[2 * pair + 1]
        width = min(len(chosen), len(rejected))
        differs = np.flatnonzero(chosen[:width] != rejected[:width])
        shared = int(differs[0]) if len(differs) else width
        for targets in (seq.targets[2 * pair], seq.targets[2 * pair + 1]):
            trained = np.flatnonzero(targets != IGNORE)
            shared = min(shared, int(trained[0]) if len(trained) else len(targets) - 1)
        return shared


def pair_sequences(table: pa.Table) -> pa.Table:
    """PREFERENCE rows -> two conversation rows per pair, with the prompt's own replies left untrained."""
    rows: dict[str, list] = {"id": [], "messages": [], "trained_from": []}
    for pair in table.select(["id", "prompt", "chosen", "rejected"]).to_pylist():
        context = sum(m["role"] == "assistant" for m in pair["prompt"])
        for side in ("chosen", "rejected"):
            rows["id"].append(json.dumps([pair["id"], side]))
            rows["messages"].append(pair["prompt"] + pair[side])
            rows["trained_from"].append(context)
    return pa.table(rows)


def tokenize_preferences(table: pa.Table, tokenizer: Any, max_length: int, truncation: str,
                         cache_root: Path | None, progress: Any = None) -> PreferenceSet:
    """Tokenise (cached, like SFT) both sides of every pair; a pair with either side dropped is dropped, counted."""
    sequences = tokenize_table(pair_sequences(table), tokenizer, max_length, truncation, cache_root)
    position = {key: index for index, key in enumerate(sequences.ids)}
    kept = TokenizedSet([], [], [])
    result = PreferenceSet([], kept)
    for pair_id in table.column("id").to_pylist():
        sides = [position.get(json.dumps([pair_id, side])) for side in ("chosen", "rejected")]
        if None in sides:
            result.dropped["too_long" if truncation == "drop" else "answer_too_long"] += 1
            continue
        result.ids.append(pair_id)
        for index in sides:
            kept.ids.append(sequences.ids[index])
            kept.input_ids.append(sequences.input_ids[index])
            kept.targets.append(sequences.targets[index])
    result.truncated_prompts = sequences.truncated_prompts
    if progress is not None:
        progress.update(table.num_rows)
    return result


def tokenize_unpaired(table: pa.Table, tokenizer: Any, max_length: int, truncation: str,
                      cache_root: Path | None, progress: Any = None) -> PreferenceSet:
    """Tokenise unpaired examples (a row of `load_unpaired` each); dropped rows are counted."""
    sequences = tokenize_table(table.select(["id", "messages", "trained_from"]), tokenizer, max_length, truncation,
                               cache_root)
    label = dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist()))
    result = PreferenceSet(list(sequences.ids), sequences, labels=np.array([label[i] for i in sequences.ids], bool))
    result.dropped["too_long" if truncation == "drop" else "answer_too_long"] += table.num_rows - len(sequences.ids)
    result.truncated_prompts = sequences.truncated_prompts
    if progress is not None:
        progress.update(table.num_rows)
    return result


def prepare_preferences(config: Any, tokenizer: Any, show_progress: bool = True) -> tuple[PreferenceSet, PreferenceSet]:
    """The preference counterpart of loop.prepare_data: load, split by id hash, tokenise."""
    from instruct.models import cache_dir
    from instruct.progress import progress_bar
    from instruct.tune.data import split_eval

    unpaired = is_unpaired(config.data.path)
    if unpaired and config.method.loss != "kto":
        raise ConfigError(f"{config.data.path}: unpaired rows (prompt, completion, label) train only "
                          f"method.loss=kto, not {config.method.loss}")
    load, tokenize = (load_unpaired, tokenize_unpaired) if unpaired else (load_preferences, tokenize_preferences)
    table = load(config.data.path)
    if config.data.eval_path:
        train_table, eval_table = table, load(config.data.eval_path)
    else:
        train_table, eval_table = split_eval(table, config.data.eval_fraction, config.data.max_eval_examples)
    cache = cache_dir() / "tokenized" if config.data.cache else None
    with progress_bar(show_progress, total=train_table.num_rows + eval_table.num_rows, desc="tokenise",
                      unit="pair") as bar:
        train_set, eval_set = (tokenize(t, tokenizer, config.data.max_length, config.data.truncation, cache, bar)
                               for t in (train_table, eval_table))
    if len(train_set) == 0:
        raise ConfigError(f"{config.data.path}: no trainable preference pairs (dropped: {dict(train_set.dropped)})")
    train_set.share_prompt = eval_set.share_prompt = shares_prompt(config) and not unpaired
    return train_set, eval_set


def shares_prompt(config: Any) -> bool:
    """Packed rows under `packed_sdpa` (the only attention that reads `segment_prefix`) share each prompt."""
    return config.packing and config.train.attn_implementation in ("auto", "packed_sdpa")


@dataclass
class PairBatch(Batch):
    """A micro-batch of pairs: `sequence` gives each target position's sequence (2i chosen, 2i + 1 rejected,
    then 2n + i for pair i's mismatched sequence when asked for; unpaired: i, then n + i)."""

    sequence: torch.Tensor = None  # same shape as targets
    pairs: int = 0
    sequences: int = 0  # how many sequences `sequence` numbers
    pair_keys: list[tuple[int, int]] = field(default_factory=list)  # (its set's `key`, pair index), in batch order
    labels: torch.Tensor | None = None  # unpaired examples (then `pairs` counts examples): desirable or not

    def to(self, device: torch.device) -> PairBatch:
        moved = super().to(device)
        return PairBatch(moved.inputs, moved.targets, moved.tokens, moved.trained, moved.group,
                         sequence=self.sequence.to(device), pairs=self.pairs, sequences=self.sequences,
                         pair_keys=self.pair_keys, labels=None if self.labels is None else self.labels.to(device))


def collate_pairs(data: PreferenceSet, indices: list[int], pack: bool, pad_id: int = 0,
                  mismatched: bool = False) -> PairBatch:
    """Pairs -> one packed row (or padded rows) of their 2n sequences; `trained` is the pair count.

    `mismatched` adds, for pair i, its prompt with the chosen answer of the next pair in the batch
    (KTO's reference point: the policy's KL to the reference on answers that do not fit)."""
    seq = data.sequences
    share = pack and data.share_prompt and data.labels is None
    ids, targets, shared, heads = [], [], [], []  # heads[k]: the sequence whose head holds k's shared prompt
    firsts = []  # where each pair's (or example's) first sequence sits in the batch
    for pair in indices:
        firsts.append(len(ids))
        sides = data.sides(pair)
        ids += [seq.input_ids[k] for k in sides]
        targets += [seq.targets[k] for k in sides]
        shared += [0, data.shared_tokens(pair) if share else 0][:len(sides)]
        heads += [firsts[-1]] * len(sides)
    if mismatched:
        for position, pair in enumerate(indices):
            own, other = data.sides(pair)[0], data.sides(indices[(position + 1) % len(indices)])[0]
            prompt, answer = _first_trained(seq.targets[own]), _first_trained(seq.targets[other])
            ids.append(np.concatenate([seq.input_ids[own][:prompt + 1], seq.input_ids[other][answer + 1:]]))
            targets.append(np.concatenate([seq.targets[own][:prompt], seq.targets[other][answer:]]))
            shared.append(prompt if share else 0)
            heads.append(firsts[position])
    if pack:
        batch = _packed_pairs(ids, targets, shared, heads, len(indices))
    else:
        padded = collate(TokenizedSet([], ids, targets), list(range(len(ids))), False, pad_id)
        batch = PairBatch(padded.inputs, padded.targets, padded.tokens, len(indices),
                          sequence=torch.arange(len(ids))[:, None].expand_as(padded.targets), pairs=len(indices),
                          sequences=len(ids))
    batch.pair_keys = [(data.key, i) for i in indices]
    if data.labels is not None:
        batch.labels = torch.from_numpy(data.labels[indices])
    return batch


def _first_trained(targets: np.ndarray) -> int:
    return int(np.flatnonzero(targets != IGNORE)[0])


def _packed_pairs(ids: list[np.ndarray], targets: list[np.ndarray], shared: list[int], heads: list[int],
                  pairs: int) -> PairBatch:
    """One packed row; sequence k drops its first `shared[k]` tokens and reads them from the head of
    sequence heads[k] (its pair's chosen sequence) through `segment_prefix`."""
    lengths = [len(x) - cut for x, cut in zip(ids, shared)]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    offset = sum(lengths)
    prefixes = [(starts[heads[k]], shared[k]) if shared[k] else (starts[k], 0) for k in range(len(ids))]
    inputs = {"input_ids": torch.from_numpy(np.concatenate([x[cut:] for x, cut in zip(ids, shared)]))[None],
              "position_ids": torch.from_numpy(np.concatenate([np.arange(cut, len(x))
                                                               for x, cut in zip(ids, shared)]))[None],
              **packed_kwargs(lengths)}
    if any(shared):
        inputs["segment_prefix"] = torch.tensor(prefixes)
    sequence = torch.repeat_interleave(torch.arange(len(ids)), torch.tensor(lengths))[None]
    row_targets = torch.from_numpy(np.concatenate([t[cut:] for t, cut in zip(targets, shared)]))[None]
    return PairBatch(inputs, row_targets, offset, pairs, sequence=sequence, pairs=pairs, sequences=len(ids))


def sequence_logps(model: Any, batch: PairBatch, select_logits: bool,
                   chunk_tokens: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-prob of each sequence's trained tokens, their count), one forward pass for the batch.

    The head runs `chunk_tokens` at a time on the trained tokens only (loss.py), so neither the
    policy nor the reference ever holds [tokens, vocab] logits."""
    outputs, head, forward = trained_outputs(model, batch.inputs, batch.targets, select_logits)
    trained = batch.targets != IGNORE
    picked, owner = batch.targets[trained], batch.sequence[trained]
    token_logps = (logits_token_logps(outputs, picked) if head is None
                   else linear_token_logps(outputs, head, forward, picked, chunk_tokens))
    count = batch.sequences
    sums = torch.zeros(count, dtype=token_logps.dtype, device=token_logps.device).index_add(0, owner, token_logps)
    return sums, torch.bincount(owner, minlength=count).to(sums.dtype)
