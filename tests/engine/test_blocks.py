"""Map and hash-partitioned reduce over a dataset's blocks with plain Ray tasks (pipeline/blocks.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline import blocks


@pytest.mark.parametrize("num_blocks, rows, pieces", [(8, 100, 4), (3, 10, 4), (1, 1000, 2), (5, 3, 4), (4, 7, 3)])
def test_slices_cover_every_row_once_in_order_and_balanced(ray_session, num_blocks, rows, pieces):
    ds = ray_session.data.range(rows, override_num_blocks=num_blocks).materialize()
    rows_of = blocks.slices(ds, pieces)
    out = blocks.gather(blocks.map_slices(lambda table, number: table, rows_of))
    ids = [i for t in out for i in t.column("id").to_pylist()]
    assert ids == [r["id"] for r in ds.take_all()], "the dataset's own order (the engine preserves input order)"
    assert sorted(ids) == list(range(rows))
    sizes = [t.num_rows for t in out]
    assert len(sizes) == min(pieces, rows) and max(sizes) - min(sizes) <= 1


def test_slices_of_an_empty_dataset_keep_its_schema(ray_session):
    ds = ray_session.data.from_arrow(pa.table({"id": pa.array([], pa.string())})).materialize()
    rows_of = blocks.slices(ds, 4)
    assert len(rows_of) <= 1
    assert all(t.schema.names == ["id"] for t in blocks.gather(blocks.map_slices(lambda t, n: t, rows_of)))


def test_a_large_dataset_is_cut_by_bytes(ray_session):
    ds = ray_session.data.from_arrow(pa.table({"text": ["x" * 1000] * 2000})).materialize()
    assert len(blocks.slices(ds, 2, max_bytes=200_000)) >= 10


@pytest.mark.parametrize("parts", [1, 3])
def test_map_partitioned_then_reduce_groups_each_key_in_one_partition(ray_session, parts):
    # defined here, so Ray ships them by value (workers cannot import a test module)
    def _keyed(table: pa.Table, number: int, parts: int) -> pa.Table:
        key = table.column("id").to_numpy() % 7
        return pa.table({"key": key, "one": np.ones(len(key), np.int64), "part": (key % parts).astype(np.int32)})

    def _count(table: pa.Table) -> pa.Table:
        return table.group_by("key").aggregate([("one", "sum")])

    ds = ray_session.data.range(1000, override_num_blocks=5).materialize()
    mapped = blocks.map_partitioned(_keyed, blocks.slices(ds, 4), parts, parts)
    counts = [t for t in blocks.gather(blocks.reduce_partitions(_count, mapped)) if t.num_rows]
    keys = [k for t in counts for k in t.column("key").to_pylist()]
    assert sorted(keys) == list(range(7)), "every key in exactly one partition"
    total = {k: n for t in counts for k, n in zip(t.column("key").to_pylist(), t.column("one_sum").to_pylist())}
    assert total == {k: len(range(k, 1000, 7)) for k in range(7)}


def test_split_by_part_keeps_row_order_within_a_partition():
    table = pa.table({"v": [5, 6, 7, 8, 9], "part": pa.array([1, 0, 1, 0, 1], pa.int32())})
    pieces = blocks.split_by_part(table, 3)
    assert [p.column("v").to_pylist() for p in pieces] == [[6, 8], [5, 7, 9], []]
    assert all(p.column_names == ["v"] for p in pieces)
