"""Clusters of duplicates and the one row each cluster keeps.

Connected components come from scipy's sparse-graph routine (C, linear time), fed with dense
node indices; the survivor rule is a lexicographic sort, so the same input always keeps the
same row whatever the order of rows or workers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SURVIVOR_RULES = ("quality", "longest", "shortest", "smallest_id")


def components(num_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label per node (0..k-1) for an undirected graph on nodes 0..num_nodes-1."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(num_nodes, num_nodes))
    return connected_components(graph, directed=False)[1]


def key_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of a graph given by edges between arbitrary uint64 keys: (sorted keys, label)."""
    keys, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    return keys, components(len(keys), inverse[: len(a)], inverse[len(a) :])


def survivor_order(
    ids: Sequence[str],
    quality: np.ndarray,
    length: np.ndarray,
    rules: Sequence[str],
    pinned: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Indices sorted from most to least deserving to survive (within each of `groups`, if given).

    `pinned` rows (kept by an earlier run) always come first; then each rule in turn; the id breaks
    any remaining tie, so the order is total and deterministic. Missing quality (NaN) ranks last.
    With `groups`, rows are sorted by group first, so every group is one run in survivor order.
    """
    keys: list[np.ndarray] = [np.asarray(ids, dtype=object).astype(str)]
    for rule in reversed(list(rules)):
        if rule == "quality":
            q = np.asarray(quality, dtype=float)
            keys.append(np.where(np.isnan(q), np.inf, -q))
        elif rule == "longest":
            keys.append(-np.asarray(length))
        elif rule == "shortest":
            keys.append(np.asarray(length))
        elif rule != "smallest_id":
            raise ValueError(f"unknown survivor rule {rule!r} (one of {', '.join(SURVIVOR_RULES)})")
    if pinned is not None:
        keys.append(~np.asarray(pinned, dtype=bool))
    if groups is not None:
        keys.append(np.asarray(groups))
    return np.lexsort(keys)


def verified_clusters(
    groups: np.ndarray, similar, all_pairs_limit: int = 200, max_leaders: int = 64
) -> np.ndarray:
    """Cluster label per row of candidate components, keeping only verified similarities.

    Rows come sorted by candidate component (`groups`), each component in survivor order.
    `similar(i, j)` takes two arrays of row indices and says which pairs really are duplicates.
    In components of up to `all_pairs_limit` rows every pair is checked, all components in one
    call, and clusters are the connected components of the verified pairs. Beyond that (a
    template shared by thousands of pages) each row is compared, in survivor order, with the
    first `max_leaders` cluster leaders only, which keeps the work linear.
    """
    n = len(groups)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, n])
    small = sizes <= all_pairs_limit
    a, b = _all_pairs(starts[small], sizes[small])
    verified = similar(a, b) if len(a) else np.zeros(0, dtype=bool)
    edges_a, edges_b = [a[verified]], [b[verified]]
    for lo, m in zip(starts[~small].tolist(), sizes[~small].tolist()):
        la, lb = _leader_edges(lo, m, similar, max_leaders)
        edges_a.append(la)
        edges_b.append(lb)
    return components(n, np.concatenate(edges_a), np.concatenate(edges_b))


def _all_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of rows inside each run [start, start + size), one numpy step per size."""
    a, b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for m in np.unique(sizes[sizes > 1]).tolist():
        x, y = np.triu_indices(m, 1)
        first = starts[sizes == m][:, None]
        a.append((first + x).reshape(-1))
        b.append((first + y).reshape(-1))
    return np.concatenate(a), np.concatenate(b)


def _leader_edges(lo: int, m: int, similar, max_leaders: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows lo..lo+m-1 in order: joined to the first similar leader among the first `max_leaders`,
    or a new leader."""
    leaders: list[int] = []
    a: list[int] = []
    b: list[int] = []
    for i in range(lo, lo + m):
        candidates = np.array(leaders[:max_leaders], dtype=np.int64)
        hits = np.flatnonzero(similar(candidates, np.full(len(candidates), i))) if leaders else []
        if len(hits):
            a.append(int(candidates[hits[0]]))
            b.append(i)
        else:
            leaders.append(i)
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)


def survivors(labels: np.ndarray) -> np.ndarray:
    """For every row, the row that survives for its cluster: the cluster's first row (rows are in
    survivor order within their component)."""
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    values, first = np.unique(labels, return_index=True)
    return first[np.searchsorted(values, labels)]
