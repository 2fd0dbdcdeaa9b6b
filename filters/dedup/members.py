"""The member rows of candidate components: what resolving a component needs of each row.

Only rows that have a candidate become members, each with its component (the partition it goes
to), what the survivor rule ranks (quality, length) and, when candidates are verified, its
shingle set, or its signature where rows of earlier runs take part: those are `pinned` (kept
before, so they always survive) and only their signatures were indexed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.nodes import lookup, node_keys
from filters.dedup.sketch import Sketch
from pipeline.records import field_numbers

_MEMBER_SCHEMA = pa.schema([
    ("node", pa.uint64()), ("id", pa.string()), ("comp", pa.int64()), ("part", pa.int32()),
    ("quality", pa.float64()), ("length", pa.int64()), ("pinned", pa.bool_()),
    ("shingles", pa.list_(pa.uint32())), ("signature", pa.list_(pa.uint32())),
])

Components = tuple[np.ndarray, np.ndarray]  # (sorted node keys, component of each), from clusters.key_components


def member_rows(
    batch: pa.Table,
    components: Components,
    texts: Callable[[pa.Table], pa.Array],
    quality_column: str | None,
    sketch: Sketch | None,
    with_shingles: bool,
    with_signatures: bool,
    partitions: int,
) -> pa.Table:
    """Rows of this run that have a candidate, with what resolving their component needs: from
    `sketch`, the shingle sets when verifying (`with_shingles`), and the signatures when the MinHash
    estimate compares rows (`with_signatures`: unverified, or rows of earlier runs take part).

    `texts(rows)` gives the compared text of each row; it runs on the members only, since building
    a text can cost a Python call per row. `quality_column` is None when no rule ranks by it.
    """
    nodes_sorted, comp = components
    nodes = node_keys(batch.column("id").to_pylist())
    pos = lookup(nodes_sorted, nodes)
    hit = pos >= 0
    batch, nodes, pos = batch.filter(pa.array(hit)), nodes[hit], pos[hit]
    compared = texts(batch)
    n = len(compared)
    quality = field_numbers(batch, quality_column) if quality_column is not None else np.full(n, np.nan)
    shingle_sets = sigs = _empty_lists(n)
    if sketch is not None and (with_shingles or with_signatures):
        tok = sketch.tokens(compared)
        if with_shingles:
            sets = sketch.shingles(tok).unique()
            shingle_sets = _list_column(sets.hashes, sets.offsets)
        if with_signatures:
            sigs = _signature_lists(sketch.signatures(tok))
    length = pc.utf8_length(compared).to_numpy(zero_copy_only=False).astype(np.int64)
    return _member_table(nodes, batch.column("id").cast(pa.string()), comp[pos], partitions, quality, length,
                         np.zeros(n, bool), shingle_sets, sigs)


def earlier_member_rows(batch: pa.Table, components: Components, with_signatures: bool, partitions: int) -> pa.Table:
    """Rows of an earlier run's index (id, buckets, signature) that have a candidate among ours."""
    nodes_sorted, comp = components
    nodes = node_keys(batch.column("id").to_pylist(), old=True)
    pos = lookup(nodes_sorted, nodes)
    hit = pos >= 0
    batch, nodes, pos = batch.filter(pa.array(hit)), nodes[hit], pos[hit]
    n = batch.num_rows
    sigs = _empty_lists(n)
    if with_signatures:
        flat = batch.column("signature").combine_chunks().flatten().to_numpy()
        sigs = _signature_lists(flat.reshape(n, -1) if n else np.zeros((0, 0), np.uint32))
    return _member_table(nodes, batch.column("id").cast(pa.string()), comp[pos], partitions, np.full(n, np.nan),
                         np.zeros(n, np.int64), np.ones(n, bool), _empty_lists(n), sigs)


def _member_table(nodes, ids, comp, partitions, quality, length, pinned, shingle_sets, sigs) -> pa.Table:
    return pa.table({
        "node": nodes, "id": ids, "comp": comp, "part": (comp % partitions).astype(np.int32),
        "quality": quality, "length": length, "pinned": pinned, "shingles": shingle_sets, "signature": sigs,
    }, schema=_MEMBER_SCHEMA)


def _list_column(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """A list<uint32> column straight from CSR arrays, without a Python object per row."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, type=pa.uint32()))


def _empty_lists(n: int) -> pa.Array:
    return _list_column(np.zeros(0, np.uint32), np.zeros(n + 1, np.int64))


def _signature_lists(signatures: np.ndarray) -> pa.Array:
    n, width = signatures.shape
    return _list_column(signatures.reshape(-1), np.arange(n + 1, dtype=np.int64) * width)
