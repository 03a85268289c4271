"""Union-find over row indices, deterministic: the root of a set is always its smallest index.

The reference the shuffled connected components (`instruct.dedup.components`) are checked
against: the package itself never gathers every edge in one process.
"""
from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving; roots are the smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    def union(self, i: int, j: int) -> bool:
        """Merge the sets of i and j; False when they were already one set."""
        root_i, root_j = self.find(i), self.find(j)
        if root_i == root_j:
            return False
        if root_j < root_i:
            root_i, root_j = root_j, root_i
        self.parent[root_j] = root_i
        return True

    def connected(self, i: int, j: int) -> bool:
        return self.find(i) == self.find(j)

    def labels(self) -> np.ndarray:
        """Root (smallest member) of every element, fully compressed, vectorised."""
        parent = self.parent
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent.copy()
            parent[:] = grand


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Component label (smallest member index) of each of n nodes joined by `edges` (m x 2)."""
    sets = UnionFind(n)
    for i, j in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        sets.union(int(i), int(j))
    return sets.labels()
