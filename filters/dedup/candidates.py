"""Candidate pairs: the bucket keys of every text, and a star of edges per shared bucket.

Two texts are candidates when they share a bucket: the hash of the normalised text (exact
dedup) or one of the LSH band keys of the signature (near-duplicate dedup). A slice's keys
become one (bucket, node) row per bucket, hash-partitioned by bucket, so that the rows of a
bucket meet in one partition whatever slice they came from.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from filters.dedup.lsh import band_keys, star_edges
from filters.dedup.nodes import OLD_BIT, node_keys
from filters.dedup.shingles import normalize
from filters.dedup.sketch import Sketch


def batches(table: pa.Table, size: int) -> list[pa.Table]:
    """A slice in batches: signatures of a few thousand texts at a time stay in the CPU cache."""
    return [table.slice(lo, size) for lo in range(0, max(table.num_rows, 1), size)]


def key_table(ids: pa.ChunkedArray | pa.Array, texts: pa.Array | list[str], sketch: Sketch | None, with_signature: bool) -> pa.Table:
    """(id, buckets[, signature]) of every text that normalises to something: one bucket, the
    hash of the normalised text, without a sketch (exact dedup); the band keys of its signature,
    with one. This is also the layout of a dedup index."""
    sig = None
    if sketch is None:
        normalized = normalize(texts)
        nonempty = pc.greater(pc.utf8_length(normalized), 0)
        ids, plain = ids.filter(nonempty), normalized.filter(nonempty).to_pylist()
        hashes = (xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in plain)
        buckets = np.fromiter(hashes, dtype=np.uint64, count=len(plain))[:, None]
    else:
        tok = sketch.tokens(texts)
        nonempty = tok.lengths() > 0
        ids, sig = ids.filter(pa.array(nonempty)), sketch.signatures(tok)[nonempty]
        buckets = band_keys(sig, sketch.bands, sketch.rows)
    cols = {"id": ids.cast(pa.string()), "buckets": _fixed_list(buckets, buckets.shape[1], pa.uint64())}
    if with_signature and sig is not None:
        cols["signature"] = _fixed_list(sig, sig.shape[1], pa.uint32())
    return pa.table(cols)


def _fixed_list(values: np.ndarray, width: int, type_: pa.DataType) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=type_), width)


def bucket_rows(keys: pa.Table, partitions: int, old: bool) -> pa.Table:
    """One (bucket, node, part) row per bucket of every row of a key table (`old`: an earlier
    run's index), `part` being the bucket's hash partition."""
    buckets = keys.column("buckets").combine_chunks()
    width = buckets.type.list_size
    flat = buckets.flatten().to_numpy()
    nodes = np.repeat(node_keys(keys.column("id").to_pylist(), old), width)
    return pa.table({"bucket": flat, "node": nodes, "part": (flat % np.uint64(partitions)).astype(np.int32)})


def partition_edges(group: pa.Table) -> pa.Table:
    """The candidate edges (a, b) of one partition's (bucket, node) rows."""
    a, b = star_edges(group.column("bucket").to_numpy(), group.column("node").to_numpy())
    ours = a < OLD_BIT  # a bucket whose smallest node is old holds only rows of earlier runs
    return pa.table({"a": a[ours], "b": b[ours]})
