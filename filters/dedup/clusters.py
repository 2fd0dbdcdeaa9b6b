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
    ids: Sequence[str], quality: np.ndarray, length: np.ndarray, rules: Sequence[str], pinned: np.ndarray | None = None
) -> np.ndarray:
    """Indices sorted from most to least deserving to survive.

    `pinned` rows (kept by an earlier run) always come first; then each rule in turn; the id breaks
    any remaining tie, so the order is total and deterministic. Missing quality (NaN) ranks last.
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
    return np.lexsort(keys)


def verified_clusters(
    order: np.ndarray, similar, all_pairs_limit: int = 200, max_leaders: int = 64
) -> np.ndarray:
    """Cluster label per member of one candidate component, keeping only verified similarities.

    `order` is the survivor order of the members; `similar(i, j)` says whether members i and j
    really are duplicates. Up to `all_pairs_limit` members every pair is checked and clusters are
    the connected components of the verified pairs. Beyond that (a template shared by thousands
    of pages) each member is compared, in survivor order, with the first `max_leaders` cluster
    leaders only, which keeps the work linear.
    """
    m = len(order)
    a: list[int] = []
    b: list[int] = []
    if m <= all_pairs_limit:
        for x in range(m):
            for y in range(x + 1, m):
                if similar(x, y):
                    a.append(x)
                    b.append(y)
    else:
        leaders: list[int] = []
        for i in order.tolist():
            match = next((lead for lead in leaders[:max_leaders] if similar(lead, i)), None)
            if match is None:
                leaders.append(i)
            else:
                a.append(match)
                b.append(i)
    return components(m, np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))


def survivors(order: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For every member, the member that survives for its cluster: the first of the cluster in `order`."""
    best: dict[int, int] = {}
    for i in order.tolist():
        best.setdefault(int(labels[i]), i)
    return np.array([best[int(label)] for label in labels], dtype=np.int64)
