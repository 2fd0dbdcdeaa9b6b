"""Verdicts: the clusters of a partition's candidate components, one small row per member.

A verdict is (node, cluster, size, dup_of): the id of the row its cluster keeps, the rows of this
run in the cluster, and the survivor's id on a row that is not the survivor (null otherwise).
Only rows with a candidate get one; every other row is its own cluster of one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.clusters import survivor_order, survivors, verified_clusters
from filters.dedup.minhash import estimated_jaccard, pairwise_jaccard
from filters.dedup.nodes import lookup, node_keys


def resolve_partition(group: pa.Table, rules: Sequence[str], verify: bool, threshold: float, width: int) -> pa.Table:
    """Verify, cluster and pick survivors for every component of one partition's member rows, all
    at once. Unverified, a component is a cluster; verified, pairs count when their Jaccard
    reaches `threshold` (`width`: the length of the members' signatures)."""
    group = group.sort_by([("comp", "ascending"), ("node", "ascending")])
    order = survivor_order(
        group.column("id").to_pylist(), group.column("quality").to_numpy(zero_copy_only=False),
        group.column("length").to_numpy(), rules, group.column("pinned").to_numpy(zero_copy_only=False),
        groups=group.column("comp").to_numpy(),
    )
    group = group.take(order)  # by component, each in survivor order
    comp = group.column("comp").to_numpy()
    pinned = group.column("pinned").to_numpy(zero_copy_only=False)
    if verify:
        similar = _similarity(threshold, width, pinned, _csr(group.column("shingles")), _csr(group.column("signature")))
        labels = verified_clusters(comp, similar)
    else:
        labels = np.unique(comp, return_inverse=True)[1]
    best = survivors(labels)
    ours = ~pinned
    size = np.bincount(labels, weights=ours)[labels].astype(np.int64)
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
    run, the MinHash estimate against an earlier run's row (only its signature is kept)."""
    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.zeros(len(i), dtype=bool)
        ours = ~pinned[i] & ~pinned[j]
        out[ours] = pairwise_jaccard(*set_csr, i[ours], j[ours]) >= threshold
        mixed = pinned[i] != pinned[j]
        if mixed.any():
            values, offsets = sig_csr
            slots = np.arange(width)
            sig_i, sig_j = values[offsets[i[mixed], None] + slots], values[offsets[j[mixed], None] + slots]
            out[mixed] = estimated_jaccard(sig_i, sig_j) >= threshold
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


def size_counts(batch: pa.Table) -> pa.Table:
    """Rows per cluster size (`dup_cluster_size`) of a batch of marked rows."""
    sizes = batch.column("dup_cluster_size").drop_null().to_numpy()
    values, counts = np.unique(sizes, return_counts=True)
    return pa.table({"size": values.astype(np.int64), "rows": counts.astype(np.int64)})
