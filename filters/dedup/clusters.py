"""Clusters of duplicates and the one row each cluster keeps.

Candidate components come from scipy's sparse-graph routine (C, linear time), fed with dense
node indices; inside each, rows are assigned to representatives as stars (`star_clusters`), so a
row is removed only for a row it is similar to. The survivor rule is a lexicographic sort, so the
same input always keeps the same row whatever the order of rows or workers.
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


def star_clusters(groups: np.ndarray, similar, all_pairs_limit: int = 200, max_leaders: int = 64) -> np.ndarray:
    """The representative each row is removed for (itself when it is kept): greedy stars, not chains.

    Rows come sorted by candidate component (`groups`), each component in survivor order (pinned
    rows of an earlier index first). `similar(i, j)` takes two arrays of row indices and says which
    pairs are duplicates (a boolean matrix over the rows works too). Walking each component in
    order, a row similar to representatives already chosen joins the best-ranked of them;
    otherwise it becomes a representative. Connected components of the similar pairs would chain
    (A~B, B~C removes C for A although A and C may be far apart); a star removes a row only for a
    representative it is itself similar to, and the survivor rule still decides who represents.
    Components of up to `all_pairs_limit` rows have every pair checked, all components in one
    call. Beyond that (a template shared by thousands of pages) a row is checked against the first
    `max_leaders` representatives only, which keeps the work linear: the same rule, except that a
    row similar only to a later representative is kept as one more.

    Another stage's similarity (cosine of embeddings) uses it the same way.
    """
    if isinstance(similar, np.ndarray):
        matrix = similar
        similar = lambda i, j: matrix[i, j]  # noqa: E731
    n = len(groups)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, n])
    small = sizes <= all_pairs_limit
    a, b = _all_pairs(starts[small], sizes[small])
    ok = similar(a, b) if len(a) else np.zeros(0, dtype=bool)
    rep = _stars(n, a[ok], b[ok])
    for lo, m in zip(starts[~small].tolist(), sizes[~small].tolist()):
        _leader_stars(rep, lo, m, similar, max_leaders)
    return rep


def _stars(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Greedy stars from similar pairs a < b: in order of b, then a, row b joins the first a that is
    still a representative. Every a < b is settled before b is reached, so one pass is enough."""
    order = np.lexsort((a, b))
    rep = list(range(n))
    for x, y in zip(a[order].tolist(), b[order].tolist()):
        if rep[y] == y and rep[x] == x:
            rep[y] = x
    return np.array(rep, dtype=np.int64)


def _all_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of rows inside each run [start, start + size), one numpy step per size."""
    a, b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for m in np.unique(sizes[sizes > 1]).tolist():
        x, y = np.triu_indices(m, 1)
        first = starts[sizes == m][:, None]
        a.append((first + x).reshape(-1))
        b.append((first + y).reshape(-1))
    return np.concatenate(a), np.concatenate(b)


def _leader_stars(rep: np.ndarray, lo: int, m: int, similar, max_leaders: int) -> None:
    """Rows lo..lo+m-1 in order: each joins the first similar one of the first `max_leaders`
    representatives, or becomes a representative."""
    leaders: list[int] = []
    for i in range(lo, lo + m):
        candidates = np.array(leaders[:max_leaders], dtype=np.int64)
        hits = np.flatnonzero(similar(candidates, np.full(len(candidates), i))) if leaders else []
        if len(hits):
            rep[i] = candidates[hits[0]]
        else:
            leaders.append(i)


def survivors(labels: np.ndarray) -> np.ndarray:
    """For every row, the first row of its cluster: the survivor when clusters are whole components
    (exact dedup), whose rows come in survivor order."""
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    values, first = np.unique(labels, return_index=True)
    return first[np.searchsorted(values, labels)]
