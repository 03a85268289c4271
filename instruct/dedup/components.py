"""Connected components of an edge list over a `Shuffle`, the same labels union-find gives.

The alternating large-star / small-star algorithm (Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014): O(log² n) rounds of shuffles over edges, each node's label
converging to the smallest member of its component. Only edges travel, so memory per call is
bounded by a partition, in this process and on a cluster alike.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from instruct.pipeline.shuffle import Blocks, Shuffle, columns, edge_table, segments

MAX_ROUNDS = 64  # large-star/small-star converges in O(log² n) rounds; more means a bug


def connected_components(shuffle: Shuffle, edges: Blocks) -> Blocks:
    """Edges (u, v) -> (u, v) for every node u of a component but its smallest, v = the smallest.

    Edges are oriented larger -> smaller after each round; the loop ends when they form
    stars around each component's smallest node (no node both points and is pointed at,
    none points twice), which is the fixed point of large-star followed by small-star.
    """
    for _ in range(MAX_ROUNDS):
        edges = shuffle.shuffle(shuffle.map(edges, _both_directions), "u", _large_star)
        edges = shuffle.shuffle(edges, "u", _small_star)
        if shuffle.total(shuffle.shuffle(shuffle.map(edges, _roles), "node", _star_violations), "bad") == 0:
            return edges
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _both_directions(batch: pa.Table) -> pa.Table:
    u, v = columns(batch, "u", "v")
    return pa.table({"u": np.concatenate([u, v]), "v": np.concatenate([v, u])})


def _by_node(batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    u, v = columns(batch, "u", "v")
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts, sizes = segments(u)
    smallest_neighbour = np.minimum.reduceat(v, starts) if len(v) else v
    return u, v, starts, sizes, smallest_neighbour


def _large_star(batch: pa.Table) -> pa.Table:
    """Per node x: link each neighbour larger than x to the smallest of x and its neighbours."""
    u, v, starts, sizes, smallest_neighbour = _by_node(batch)
    smallest = np.repeat(np.minimum(u[starts], smallest_neighbour), sizes)
    larger = v > u
    return edge_table(v[larger], smallest[larger])


def _small_star(batch: pa.Table) -> pa.Table:
    """Per node x with its smaller neighbours: link x and each of them to the smallest one."""
    u, v, starts, sizes, smallest_neighbour = _by_node(batch)
    nodes = np.concatenate([u[starts], v])
    links = np.concatenate([smallest_neighbour, np.repeat(smallest_neighbour, sizes)])
    keep = nodes != links
    return edge_table(nodes[keep], links[keep])


def _roles(batch: pa.Table) -> pa.Table:
    u, v = columns(batch, "u", "v")
    return pa.table({"node": np.concatenate([u, v]),
                     "first": np.concatenate([np.ones(len(u), np.int64), np.zeros(len(v), np.int64)])})


def _star_violations(batch: pa.Table) -> pa.Table:
    """Nodes that keep the edges from being stars around each component's smallest node."""
    node, first = columns(batch, "node", "first")
    order = np.argsort(node, kind="stable")
    starts, sizes = segments(node[order])
    as_first = np.add.reduceat(first[order], starts) if len(starts) else np.zeros(0, np.int64)
    bad = (as_first > 1) | ((as_first >= 1) & (as_first < sizes))
    return pa.table({"bad": pa.array([int(bad.sum())], pa.int64())})
