"""Verdicts: the clusters of a partition's candidate components, one small row per member.

A verdict is (node, cluster, size, dup_of): the id of the representative its star keeps, the rows
of this run in that star, and the representative's id on a row that is not one (null otherwise).
Only rows with a candidate get one; every other row is its own cluster of one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.clusters import star_clusters, survivor_order, survivors
from filters.dedup.minhash import estimated_jaccard, pairwise_jaccard
from filters.dedup.nodes import lookup, node_keys


def resolve_partition(group: pa.Table, rules: Sequence[str], compare: str, threshold: float, width: int) -> pa.Table:
    """Pick survivors for every component of one partition's member rows, all at once.

    `compare` says what makes two members of a component duplicates: `equal` (exact dedup: the
    component is one text, so one cluster), `jaccard` (verified: the exact Jaccard of their shingle
    sets reaches `threshold`) or `estimate` (unverified: the MinHash estimate from their signatures,
    of `width` values, reaches it). Similar members form stars around representatives
    (clusters.star_clusters), so no row is removed for a row it is not similar to.
    """
    group = group.sort_by([("comp", "ascending"), ("node", "ascending")])
    order = survivor_order(
        group.column("id").to_pylist(), group.column("quality").to_numpy(zero_copy_only=False),
        group.column("length").to_numpy(), rules, group.column("pinned").to_numpy(zero_copy_only=False),
        groups=group.column("comp").to_numpy(),
    )
    group = group.take(order)  # by component, each in survivor order
    comp = group.column("comp").to_numpy()
    pinned = group.column("pinned").to_numpy(zero_copy_only=False)
    if compare == "equal":
        best = survivors(comp)
    else:
        sets = _csr(group.column("shingles")) if compare == "jaccard" else None
        best = star_clusters(comp, _similarity(threshold, width, pinned, sets, _csr(group.column("signature"))))
    ours = ~pinned
    size = np.bincount(best, weights=ours, minlength=len(best))[best].astype(np.int64)
    ids = group.column("id").combine_chunks()
    cluster = ids.take(pa.array(best))
    dup_of = pc.if_else(pa.array(best == np.arange(len(best))), pa.scalar(None, pa.string()), cluster)
    keep = pa.array(ours)
    return pa.table({
        "node": group.column("node").combine_chunks().filter(keep), "cluster": cluster.filter(keep),
        "size": pa.array(size[ours], type=pa.int64()), "dup_of": dup_of.filter(keep),
    })


def _csr(column) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (values, offsets), so a row's list is a numpy slice and not Python ints."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = col.values.to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy().astype(np.int64)
    return values, offsets


def _similarity(threshold: float, width: int, pinned: np.ndarray, set_csr, sig_csr):
    """similar(i, j) over arrays of row pairs: exact Jaccard on shingle sets between rows of this
    run (with `set_csr`), else the MinHash estimate, always so against an earlier run's row (only
    its signature is kept). Two earlier rows are never similar: each was kept, so each stays a
    representative for the rows of this run."""
    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.zeros(len(i), dtype=bool)
        estimate = pinned[i] != pinned[j]
        if set_csr is not None:
            ours = ~pinned[i] & ~pinned[j]
            out[ours] = pairwise_jaccard(*set_csr, i[ours], j[ours]) >= threshold
        else:
            estimate |= ~pinned[i] & ~pinned[j]
        if estimate.any():
            values, offsets = sig_csr
            slots = np.arange(width)
            sig_i, sig_j = values[offsets[i[estimate], None] + slots], values[offsets[j[estimate], None] + slots]
            out[estimate] = estimated_jaccard(sig_i, sig_j) >= threshold
        return out

    return similar


def empty_verdicts() -> pa.Table:
    return pa.table({"node": pa.array([], pa.uint64()), "cluster": pa.array([], pa.string()),
                     "size": pa.array([], pa.int64()), "dup_of": pa.array([], pa.string())})


def row_verdicts(ids: list[str], verdicts: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(cluster, size, dup_of) of each id, from the verdicts sorted by node; an id without one is
    its own cluster of one."""
    pos = lookup(verdicts.column("node").to_numpy(), node_keys(ids))
    found = pa.array(pos >= 0)
    take = pa.array(np.maximum(pos, 0))

    def verdict(name: str, default):
        if not verdicts.num_rows:
            return default if isinstance(default, pa.Array) else pa.array([default.as_py()] * len(ids), default.type)
        return pc.if_else(found, verdicts.column(name).take(take), default)

    return (verdict("cluster", pa.array(ids, pa.string())), verdict("size", pa.scalar(1, pa.int64())),
            verdict("dup_of", pa.scalar(None, pa.string())))


def rows_by_size(verdicts: pa.Table, rows: int) -> dict[int, int]:
    """Rows per cluster size among `rows` rows of this run: the verdicts hold every row of a cluster of
    several (and rows whose candidates all proved different, of size 1); any other row is a cluster of one."""
    values, counts = np.unique(verdicts.column("size").to_numpy(), return_counts=True)
    by_size = dict(zip(values.tolist(), counts.tolist()))
    by_size[1] = by_size.get(1, 0) + rows - verdicts.num_rows
    return {size: n for size, n in sorted(by_size.items()) if n}
