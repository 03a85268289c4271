"""The near-dup decision as small pure functions over numpy arrays, in pipeline order:

    minhash rows ─band_keys─▶ (row, band) keys ─candidate_pairs─▶ pairs
      ─the check (`jaccard_check` or `signature_check`)─▶ edges ─connected components─▶ components
      ─split_by_representative─▶ clusters whose every member is similar to its kept member

`minhash_dedup`'s pass 2 runs them piecewise on a shuffle: rows by `band_keys`, `candidate_pairs`
inside each key group, the check per pair, components in `dedup.components`.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from typing import Callable

import numpy as np

from instruct.dedup.text import ShingleBatch, fmix, jaccard, sorted_unique

_MIX = np.uint64(0x9E3779B97F4A7C15)
SMALL_BUCKET = 16  # buckets up to this size give all pairs; larger ones a star and a chain


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, verified: bool) -> tuple[int, int]:
    """(bands, rows) minimising datasketch's weighted false-positive + false-negative area.

    The criterion of `datasketch.lsh._optimal_param`, integrated on a grid with numpy instead of
    scipy (whose import costs ~0.8 s). With verification a false candidate only costs a check,
    so misses weigh far more.
    """
    fp_weight, fn_weight = (0.05, 0.95) if verified else (0.5, 0.5)
    options = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    bands, rows = options[:, :1], options[:, 1:]
    below = np.linspace(0.0, threshold, 2001)
    above = np.linspace(threshold, 1.0, 2001)
    false_positive = np.trapezoid(candidate_curve(below, bands, rows), below, axis=1)
    false_negative = np.trapezoid(1.0 - candidate_curve(above, bands, rows), above, axis=1)
    best = int(np.argmin(fp_weight * false_positive + fn_weight * false_negative))  # first minimum, as datasketch
    return int(options[best, 0]), int(options[best, 1])


def candidate_curve(similarity: np.ndarray, bands, rows) -> np.ndarray:
    return 1.0 - (1.0 - similarity ** rows) ** bands


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two rows of this Jaccard similarity share at least one band."""
    return float(candidate_curve(np.asarray(similarity), bands, rows))


def band_keys(minhashes: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one hash per band of `rows` consecutive minhash values."""
    n = minhashes.shape[0]
    if bands * rows > minhashes.shape[1]:
        raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {minhashes.shape[1]}")
    cells = minhashes[:, :bands * rows].astype(np.uint64).reshape(n, bands, rows)
    acc = np.zeros((n, bands), dtype=np.uint64)
    for j in range(rows):
        acc = acc * _MIX + cells[:, :, j]
    return fmix(acc + np.arange(bands, dtype=np.uint64))


def candidate_pairs(keys: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Unique (i, j), i < j, of row indices sharing a key in any band, sorted.

    `rows` maps the key matrix rows to global indices (default 0..n-1). Buckets of at most
    SMALL_BUCKET rows give every pair; a larger bucket (many copies of one text) gives a star
    from its first row plus a chain, enough to connect it without quadratic cost.
    """
    n, bands = keys.shape
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    found = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        sizes = np.diff(np.concatenate([starts, [n]]))
        group_start = np.repeat(starts, sizes)
        member = np.arange(n) != group_start
        found.append(np.stack([order[group_start[member]], order[member]], axis=1))  # star
        chained = np.flatnonzero(member & (np.arange(n) - group_start >= 2))
        found.append(np.stack([order[chained - 1], order[chained]], axis=1))  # chain
        for start, size in zip(starts[(sizes > 2) & (sizes <= SMALL_BUCKET)],
                               sizes[(sizes > 2) & (sizes <= SMALL_BUCKET)]):
            found.append(np.array(list(combinations(order[start:start + size], 2)), dtype=np.int64))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    local = np.sort(np.concatenate(found), axis=1)  # dedupe on 0..n-1, whose packed codes cannot overflow
    codes = sorted_unique(local[:, 0] * np.int64(n) + local[:, 1])
    pairs = np.sort(rows[np.stack([codes // n, codes % n], axis=1)], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def jaccard_check(shingles: ShingleBatch, threshold: float) -> Callable[[int, int], bool]:
    """Exact Jaccard of the two rows' shingle sets against the threshold."""
    counts = shingles.counts()

    def similar(i: int, j: int) -> bool:
        small, large = sorted((counts[i], counts[j]))
        if large == 0 or small < threshold * large:  # |A∩B|/|A∪B| <= |A|/|B|: cannot reach it
            return False
        return jaccard(shingles.of(i), shingles.of(j)) >= threshold

    return similar


def signature_check(minhashes: np.ndarray, threshold: float) -> Callable[[int, int], bool]:
    """Estimated Jaccard (share of equal minhash values) against the threshold."""
    return lambda i, j: float(np.mean(minhashes[i] == minhashes[j])) >= threshold


def split_by_representative(labels: np.ndarray, rank: np.ndarray,
                            similar: Callable[[int, int], bool]) -> tuple[np.ndarray, int]:
    """Break transitive chains: inside each component, visit members best-first (rank, index);
    a member joins the first representative it is itself similar to, or becomes one.

    Verified edges alone still chain A~B~C into one cluster when A and C differ; after this step
    every dropped record passes the check against the record that is kept in its place.
    Returns the new labels (representative index) and how many extra clusters the split made.
    """
    labels = labels.copy()
    sizes = np.bincount(labels, minlength=len(labels))
    members = np.flatnonzero(sizes[labels] > 1)
    order = members[np.lexsort((members, rank[members], labels[members]))]
    extra = 0
    start = 0
    while start < len(order):
        component = labels[order[start]]
        end = start
        while end < len(order) and labels[order[end]] == component:
            end += 1
        representatives: list[int] = []
        for row in order[start:end].tolist():
            home = next((r for r in representatives if similar(row, r)), None)
            if home is None:
                representatives.append(row)
                home = row
            labels[row] = home
        extra += len(representatives) - 1
        start = end
    return labels, extra
