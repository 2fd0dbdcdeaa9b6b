"""Map and hash-partitioned reduce over a materialised dataset's blocks, as plain Ray tasks.

A global stage whose work is a few rounds of map -> shuffle -> reduce (dedup: band keys, then
clusters) runs the rounds here instead of as Ray Data executions and groupbys. On a small
cluster each Ray Data execution takes about 0.1 s to start and runs short tasks mostly one at a
time, and its groupby sorts every row; a plain task starts in about a millisecond and the hash
split is one stable argsort per map task. Dedup took half the time at 100k documents this way
(docs/benchmarks-history.md, issue 4). The data stays in the object store: only what a stage asks to `gather`
comes to the driver.

Each map task returns one object per partition (`num_returns`), so a reduce task fetches
exactly its partition's pieces from every map task and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import ray
import ray.data

PART = "part"


@dataclass(frozen=True)
class Slice:
    """Some rows of a dataset: rows [start, stop) of each of its blocks (stop None: to the end)."""

    blocks: tuple[ray.ObjectRef, ...]
    bounds: tuple[tuple[int, int | None], ...]


def slices(ds, pieces: int, max_bytes: int = 64 << 20) -> list[Slice]:
    """The rows of a dataset as `pieces` slices of about the same number of rows (more if a slice
    would exceed `max_bytes`), in order.

    A task per slice then keeps every CPU busy whatever the dataset's blocks: big blocks are cut,
    small ones share a task, and the output has as many blocks as there are slices.
    """
    entries = [(e.ref, e.metadata.num_rows, e.metadata.size_bytes or 0)
               for bundle in ds.iter_internal_ref_bundles() for e in bundle.blocks]
    total = sum(n for _, n, _ in entries)
    if not total:  # keep one (empty) block: the output keeps the schema
        return whole([ref for ref, _, _ in entries[:1]])
    pieces = max(1, pieces, math.ceil(sum(b for _, _, b in entries) / max_bytes))
    ends = np.linspace(0, total, pieces + 1).astype(int)[1:]  # global row where each slice ends
    out, current, first = [], [], 0
    for ref, n, _ in entries:
        lo = 0
        while lo < n:
            hi = min(n, int(ends[len(out)]) - first)
            if hi > lo:
                current.append((ref, lo, hi))
            lo = hi
            if first + hi == ends[len(out)]:
                out.append(Slice(tuple(r for r, _, _ in current), tuple((a, b) for _, a, b in current)))
                current = []
        first += n
    return [s for s in out if s.blocks]


def whole(refs: list[ray.ObjectRef]) -> list[Slice]:
    return [Slice((ref,), ((0, None),)) for ref in refs]


def map_slices(fn: Callable[..., Any], rows: list[Slice], *args: Any) -> list[ray.ObjectRef]:
    """`fn(table, number, *args)` on every slice; one result per slice (its rows, or a small value to `gather`)."""
    return [_map.remote(fn, None, i, s.bounds, len(args), *args, *s.blocks) for i, s in enumerate(rows)]


def map_partitioned(fn: Callable[..., pa.Table], rows: list[Slice], parts: int, *args: Any) -> list[list[ray.ObjectRef]]:
    """`fn(table, number, *args)` on every slice, its rows split by their int `part` column
    (0 <= part < parts): per slice, one object per partition."""
    out = []
    for i, s in enumerate(rows):
        refs = _map.options(num_returns=parts).remote(fn, parts, i, s.bounds, len(args), *args, *s.blocks)
        out.append(refs if parts > 1 else [refs])
    return out


def reduce_partitions(fn: Callable[..., pa.Table], mapped: list[list[ray.ObjectRef]], *args: Any) -> list[ray.ObjectRef]:
    """`fn(rows of partition p from every map task, *args)` for every partition p."""
    parts = len(mapped[0]) if mapped else 0
    return [_reduce.remote(fn, len(args), *args, *[m[p] for m in mapped]) for p in range(parts)]


def gather(refs: list[ray.ObjectRef]) -> list[pa.Table]:
    return ray.get(refs)


def share(value: Any) -> ray.ObjectRef:
    """A value every task of a round reads (verdicts, a sorted key array), stored once, not once per task."""
    return ray.put(value)


def cpus() -> int:
    """The cluster's CPUs: how many slices keep every one busy."""
    return int(ray.cluster_resources().get("CPU", 1))


def dataset(refs: list[ray.ObjectRef]):
    """The tables as a dataset, in order."""
    return ray.data.from_arrow_refs(refs)


def split_by_part(table: pa.Table, parts: int) -> list[pa.Table]:
    part = table.column(PART).to_numpy()
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    table = table.drop_columns([PART]).take(pa.array(order))
    return [table.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _rows(bounds, blocks) -> pa.Table:
    from ray.data.block import BlockAccessor

    tables = []
    for (start, stop), block in zip(bounds, blocks):
        table = BlockAccessor.for_block(block).to_arrow()
        tables.append(table.slice(start, (table.num_rows if stop is None else stop) - start))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")


@ray.remote
def _map(fn, parts: int | None, number: int, bounds, num_args: int, *args_and_blocks):
    """fn on a slice's rows: its table as is (parts None), or split into `parts` objects."""
    args, blocks = args_and_blocks[:num_args], args_and_blocks[num_args:]
    out = fn(_rows(bounds, blocks), number, *args)
    if parts is None:
        return out
    pieces = split_by_part(out, parts)
    return tuple(pieces) if parts > 1 else pieces[0]


@ray.remote
def _reduce(fn, num_args: int, *args_and_pieces):
    args, pieces = args_and_pieces[:num_args], args_and_pieces[num_args:]
    return fn(pa.concat_tables(pieces), *args)
