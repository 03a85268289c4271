"""`minhash_dedup`: near-duplicate removal with MinHash LSH, verified pairs and connected components.

Workers turn each record into shingles (word n-grams or character n-grams) and a MinHash
signature computed in bulk: all shingles of a batch go through datasketch's permutation family
(`affine32`: MurmurHash3 finaliser, then a*h+b mod 2^32) as one numpy matrix, reduced per
record with `np.minimum.reduceat`; no Python call per shingle. Pass 2 (on the executor's shuffle)
bands the signatures, collects candidate pairs, checks each against the threshold (exact Jaccard
of the stored shingle sets by default, so chains of look-alikes cannot merge unrelated records),
joins the survivors into components and keeps one member per cluster. See `instruct.dedup.lsh` for the pieces.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal

import numpy as np
import pyarrow as pa

from instruct.config import ConfigError
from instruct.dedup.clusters import CLUSTERS, KeepConfig, check_keep, priority_columns
from instruct.dedup.components import connected_components
from instruct.dedup.fate import decide_clusters
from instruct.dedup.lsh import (
    band_keys,
    candidate_pairs,
    candidate_probability,
    jaccard_check,
    lsh_params,
    signature_check,
)
from instruct.dedup.text import ShingleBatch, Shingling, fmix, record_texts, shingle_hashes
from instruct.pipeline.shuffle import Shuffle, SignatureStore, columns, edge_table, segments
from instruct.pipeline.step import GlobalStep

CHUNK_ROWS = 1 << 15  # shingles per (rows x num_perm) block: 16 MB at 128 permutations


def permutations(num_perm: int, seed: int) -> np.ndarray:
    """datasketch's affine32 permutation parameters (2 x num_perm uint32: odd a, b), bit for bit.

    The lines of `MinHash._init_permutations(scheme="affine32")`, repeated here because importing
    datasketch pulls in scipy (0.8 s per worker process); tests check both are equal.
    """
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


def minhash_signatures(shingles: ShingleBatch, perms: np.ndarray) -> np.ndarray:
    """(texts x num_perm) uint32 MinHash signatures, equal to datasketch's `update` of each hash.

    A text without shingles keeps the all-max signature (and is never a candidate).
    """
    a, b = perms[0], perms[1]
    n, num_perm = len(shingles), perms.shape[1]
    out = np.full((n, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    mixed = fmix(shingles.values.astype(np.uint32), 32)
    offsets = shingles.offsets
    total = len(mixed)
    for lo in range(0, total, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, total)
        block = a[:, None] * mixed[None, lo:hi] + b[:, None]  # (num_perm x rows), wraps mod 2^32
        first = int(np.searchsorted(offsets, lo, side="right")) - 1
        last = int(np.searchsorted(offsets, hi, side="left"))
        docs = np.arange(first, last)
        docs = docs[(offsets[docs + 1] > offsets[docs]) & (offsets[docs + 1] > lo)]
        starts = np.maximum(offsets[docs], lo) - lo
        out[docs] = np.minimum(out[docs], np.minimum.reduceat(block, starts, axis=1).T)
    return out


class MinHashDedup(GlobalStep):
    name = "minhash_dedup"
    side_schemas = {"clusters": CLUSTERS}

    @dataclass
    class Config(KeepConfig):
        threshold: float = 0.7  # Jaccard similarity of shingle sets that makes two records duplicates
        ngram: int = 5
        unit: Literal["word", "char"] = "word"
        num_perm: int = 128
        bands: int = 0  # 0: chosen from threshold and num_perm (with rows)
        rows: int = 0
        verify: Literal["jaccard", "signature", "none"] = "jaccard"
        seed: int = 1

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        c = self.config
        if not 0.0 < c.threshold <= 1.0:
            raise ConfigError(f"{self.name}.threshold: must be in (0, 1], got {c.threshold}")
        if c.ngram < 1 or c.num_perm < 1:
            raise ConfigError(f"{self.name}: ngram and num_perm must be >= 1")
        if (c.bands > 0) != (c.rows > 0):
            raise ConfigError(f"{self.name}: give both bands and rows, or neither")
        if c.bands * c.rows > c.num_perm:
            raise ConfigError(f"{self.name}: bands x rows = {c.bands * c.rows} exceeds num_perm = {c.num_perm}")
        check_keep(c, self.name)
        self.shingling = Shingling(c.ngram, c.unit)
        self._perms: np.ndarray | None = None

    def setup(self) -> None:
        self._perms = permutations(self.config.num_perm, self.config.seed)

    @property
    def banding(self) -> tuple[int, int]:
        c = self.config
        return (c.bands, c.rows) if c.bands else lsh_params(c.threshold, c.num_perm, c.verify != "none")

    def signatures(self, table: pa.Table) -> pa.Table:
        texts = record_texts(table)
        shingles = shingle_hashes(texts, self.shingling)
        minhashes = minhash_signatures(shingles, self._perms)
        columns = {"id": table.column("id"),
                   "minhash": pa.FixedSizeListArray.from_arrays(pa.array(minhashes.reshape(-1)), self.config.num_perm),
                   "shingle_count": pa.array(shingles.counts(), pa.int64())}
        if self.config.verify == "jaccard":
            columns["shingles"] = shingles.to_arrow()
        columns.update(priority_columns(table, texts, self.config))
        return pa.table(columns)

    def check_columns(self) -> list[str]:
        """Signature columns the pairwise check reads (none: every candidate pair counts)."""
        return {"jaccard": ["shingles"], "signature": ["minhash"]}.get(self.config.verify, [])

    def similarity(self, table: pa.Table) -> Callable[[int, int], bool]:
        """The pairwise check over rows (positions) of `table`: exact Jaccard or signature agreement."""
        if self.config.verify == "jaccard":
            return jaccard_check(ShingleBatch.from_arrow(table.column("shingles")), self.config.threshold)
        return signature_check(minhash_matrix(table.column("minhash"), self.config.num_perm), self.config.threshold)

    def decide_by_shuffle(self, shuffle: Shuffle) -> tuple[dict[str, int], dict[str, Any]]:
        """Rows ─explode to (band key, row)─shuffle by key─▶ candidate pairs per bucket ─shuffle by row─▶
        unique pairs ─the check─▶ edges ─connected components─▶ clusters.

        Every unique pair is checked, so `verified_pairs + rejected_pairs == candidate_pairs`
        (`skipped_pairs` stays 0: no pair is visited in a global order).
        """
        c = self.config
        bands, rows = self.banding
        band_schema = pa.schema([("band", pa.int32()), ("key", pa.uint64()), ("row", pa.int64())])
        banded = shuffle.rows(partial(_band_rows, c.num_perm, bands, rows), band_schema)
        pairs = shuffle.shuffle(shuffle.shuffle(banded, "key", _bucket_pairs), "u", _unique_edges)
        edges = shuffle.map(pairs, partial(_verify, self, shuffle.paths))
        candidates, verified = shuffle.count(pairs), shuffle.count(edges)
        labelled = connected_components(shuffle, edges) if verified else None
        report = {"threshold": c.threshold, "ngram": c.ngram, "unit": c.unit, "num_perm": c.num_perm,
                  "bands": bands, "rows": rows, "verify": c.verify, "keep": c.keep,
                  "candidate_probability_at_threshold": round(candidate_probability(c.threshold, bands, rows), 4),
                  "candidate_pairs": candidates, "verified_pairs": verified, "rejected_pairs": candidates - verified,
                  "skipped_pairs": 0}
        return decide_clusters(shuffle, self, labelled, "near_duplicate", report)

def _band_rows(num_perm: int, bands: int, rows: int, table: pa.Table, base: int) -> pa.Table:
    present = np.flatnonzero(table.column("shingle_count").to_numpy() > 0)
    keys = band_keys(minhash_matrix(table.column("minhash"), num_perm)[present], bands, rows)
    return pa.table({"band": np.tile(np.arange(bands, dtype=np.int32), len(present)), "key": keys.reshape(-1),
                     "row": np.repeat(base + present, bands)})


def _bucket_pairs(batch: pa.Table) -> pa.Table:
    """Candidate pairs of every (band, key) bucket in this partition, by `candidate_pairs`' rule.

    `candidate_pairs` gets positions within the band (it packs a pair into one int64 as
    i * n + j, which global row numbers would overflow); rows ascend within a band, so mapping
    positions back to rows keeps i < j and the pairs' order.
    """
    band, key, row = columns(batch, "band", "key", "row")
    order = np.lexsort((row, band))
    band, key, row = band[order], key[order], row[order]
    starts, sizes = segments(band)
    found = [row[s:s + n][candidate_pairs(key[s:s + n].reshape(-1, 1))] for s, n in zip(starts, sizes)]
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def _unique_edges(batch: pa.Table) -> pa.Table:
    return edge_table(*columns(batch, "u", "v"))


def _verify(step: MinHashDedup, paths: list[str], batch: pa.Table) -> pa.Table:
    """Keep the candidate pairs that pass the step's check."""
    u, v = columns(batch, "u", "v")
    check = step.check_columns()
    if not check or not len(u):
        return batch
    nodes = np.unique(np.concatenate([u, v]))
    similar = step.similarity(SignatureStore(paths).take(nodes, check))
    i, j = np.searchsorted(nodes, u), np.searchsorted(nodes, v)
    passed = np.fromiter((similar(a, b) for a, b in zip(i.tolist(), j.tolist())), dtype=bool, count=len(u))
    return batch.filter(pa.array(passed))


def minhash_matrix(column: pa.ChunkedArray, num_perm: int) -> np.ndarray:
    values = np.concatenate([np.asarray(chunk.flatten().to_numpy(zero_copy_only=False), dtype=np.uint32)
                             for chunk in column.chunks]) if column.num_chunks else np.zeros(0, np.uint32)
    return values.reshape(-1, num_perm)
