"""The rounds of dedup without Ray: keys -> candidate edges -> components -> members -> verdicts,
chained in one process on real AG News text, as the stage chains them over Ray tasks."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest

from filters.dedup.candidates import bucket_rows, key_table, partition_edges
from filters.dedup.clusters import key_components
from filters.dedup.members import earlier_member_rows, member_rows
from filters.dedup.minhash import jaccard
from filters.dedup.nodes import OLD_BIT, node_keys
from filters.dedup.shingles import shingles
from filters.dedup.sketch import Sketch
from filters.dedup.verdicts import empty_verdicts, resolve_partition, row_verdicts, rows_by_size

SKETCH = Sketch(ngram=5, shingle="word", hash="xxh3", seed=1, scheme="affine32", bands=14, rows=8)
RULES = ["quality", "longest", "smallest_id"]


@pytest.fixture(scope="module")
def news(shared_data) -> list[str]:
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        rows = list(csv.reader(f))
    return [f"{title}. {desc}" for _, title, desc in rows if len(desc.split()) >= 25][:200]


def _changed(text: str, *at: int) -> str:
    """The text with the words at positions `at` replaced."""
    words = text.split()
    for i in at:
        words[i % len(words)] = "zebra"
    return " ".join(words)


def _texts(rows: pa.Table) -> list[str]:
    return rows.column("text").to_pylist()


def _dedup(table: pa.Table, sketch: Sketch | None, verify: bool, earlier: pa.Table | None = None) -> pa.Table:
    """Every round in one process with one partition: the verdicts, sorted by node."""
    keys = key_table(table.column("id"), _texts(table), sketch, with_signature=False)
    buckets = [bucket_rows(keys, 1, old=False)] + ([bucket_rows(earlier, 1, old=True)] if earlier is not None else [])
    edges = partition_edges(pa.concat_tables(buckets))
    if not edges.num_rows:
        return empty_verdicts()
    components = key_components(edges.column("a").to_numpy(), edges.column("b").to_numpy())
    width = sketch.width if sketch else 1
    compare = ("jaccard" if verify else "estimate") if sketch else "equal"
    signatures = compare == "estimate" or (compare == "jaccard" and earlier is not None)
    members = [member_rows(table, components, _texts, "quality", sketch, compare == "jaccard", signatures, 1)]
    if earlier is not None:
        members.append(earlier_member_rows(earlier, components, compare != "equal", 1))
    return resolve_partition(pa.concat_tables(members), RULES, compare, 0.8, width).sort_by("node")


def _dup_of(table: pa.Table, verdicts: pa.Table) -> dict[str, str]:
    ids = table.column("id").to_pylist()
    _, _, dup_of = row_verdicts(ids, verdicts)
    return {i: d for i, d in zip(ids, dup_of.to_pylist()) if d is not None}


@pytest.mark.shared_data
def test_rounds_find_planted_copies_and_keep_the_original(news):
    """A word changed at the end of a text changes one shingle (true Jaccard >= 0.9), two in the
    middle ten (below 0.8 for most of these lengths): the first kind is found, the second is not removed."""
    copies = {f"copy{k:03d}": (f"doc{k:03d}", _changed(news[k], *((-1,) if k % 2 else (8, 16)))) for k in range(20)}
    table = pa.table({
        "id": [f"doc{i:03d}" for i in range(len(news))] + list(copies),
        "text": news + [t for _, t in copies.values()],
        "quality": [1.0] * len(news) + [0.5] * len(copies),  # the original ranks first by quality
    })
    dup_of = _dup_of(table, _dedup(table, SKETCH, verify=True))
    texts = dict(zip(table.column("id").to_pylist(), _texts(table)))

    def true_jaccard(x: str, y: str) -> float:
        return jaccard(*shingles([texts[x], texts[y]]).unique_sets())

    close = [c for c, (original, _) in copies.items() if true_jaccard(c, original) >= 0.9]
    far = [c for c, (original, _) in copies.items() if true_jaccard(c, original) < 0.8]
    assert len(close) >= 8 and len(far) >= 5
    assert {c: dup_of.get(c) for c in close} == {c: copies[c][0] for c in close}
    assert not any(i.startswith("doc") and d.startswith("copy") for i, d in dup_of.items())
    for row, survivor in dup_of.items():  # verified: every removed row is a real near-duplicate
        assert true_jaccard(row, survivor) >= 0.8, (row, survivor)
    assert not set(far) & set(dup_of)


@pytest.mark.shared_data
def test_verification_splits_a_candidate_component(news):
    """Three rows in one candidate component, only two of them alike: two clusters, whether the
    exact Jaccard (verified) or the MinHash estimate (unverified) judges them."""
    table = pa.table({"id": ["a", "b", "c"], "text": [news[0], _changed(news[0], -1), news[1]],
                      "quality": [None, None, None]}, schema=pa.schema([("id", pa.string()), ("text", pa.string()),
                                                                       ("quality", pa.float64())]))
    nodes = np.sort(node_keys(["a", "b", "c"]))
    components = (nodes, np.zeros(3, np.int64))
    longer = "a" if len(news[0]) >= len(table.column("text")[1].as_py()) else "b"
    for compare in ("jaccard", "estimate"):
        members = member_rows(table, components, _texts, None, SKETCH, compare == "jaccard", compare == "estimate", 1)
        verdicts = resolve_partition(members, RULES, compare, 0.8, SKETCH.width).sort_by("node")
        cluster, size, dup_of = row_verdicts(["a", "b", "c"], verdicts)
        assert cluster.to_pylist() == [longer, longer, "c"] and size.to_pylist() == [2, 2, 1], compare
        assert dup_of.to_pylist()[2] is None


@pytest.mark.shared_data
def test_rows_of_an_earlier_index_always_survive_and_get_no_verdict(news):
    index = key_table(pa.array(["old0", "old1"]), [news[0], news[1]], SKETCH, with_signature=True)
    assert index.column_names == ["id", "buckets", "signature"]
    table = pa.table({"id": ["new0", "new2"], "text": [_changed(news[0], -1), news[2]], "quality": [9.0, 9.0]})
    verdicts = _dedup(table, SKETCH, verify=True, earlier=index)
    assert not (verdicts.column("node").to_numpy() & OLD_BIT).any()
    assert _dup_of(table, verdicts) == {"new0": "old0"}  # a higher quality does not beat a row kept before
    assert row_verdicts(["new0"], verdicts)[1].to_pylist() == [1]  # the size counts rows of this dataset only


def test_buckets_of_earlier_runs_alone_give_no_edge():
    rows = pa.table({"bucket": np.array([5, 5, 7, 7], np.uint64),
                     "node": np.concatenate([node_keys(["x", "y"], old=True), node_keys(["z"], old=True), node_keys(["z"])])})
    edges = partition_edges(rows)
    assert edges.column("a").to_pylist() == [int(node_keys(["z"])[0])]
    assert edges.column("b").to_pylist() == [int(node_keys(["z"], old=True)[0])]


def test_texts_with_nothing_to_compare_get_no_keys():
    ids = pa.array(["a", "b", "c", "d", "e"])
    texts = ["Hello, World 2024!", "", "  !!! ", "hello world 1999", "something else entirely"]
    exact = key_table(ids, texts, None, with_signature=True)
    assert exact.column_names == ["id", "buckets"] and exact.column("id").to_pylist() == ["a", "d", "e"]
    buckets = exact.column("buckets").to_pylist()
    assert buckets[0] == buckets[1] != buckets[2]  # same text after normalisation: one bucket
    near = key_table(ids, texts, SKETCH, with_signature=False)
    assert near.column_names == ["id", "buckets"] and len(near.column("buckets")[0]) == SKETCH.bands


def test_rows_without_a_verdict_are_their_own_cluster():
    verdicts = pa.table({"node": node_keys(["b"]), "cluster": ["a"], "size": pa.array([2], pa.int64()), "dup_of": ["a"]})
    cluster, size, dup_of = row_verdicts(["a", "b", "c"], verdicts)
    assert (cluster.to_pylist(), size.to_pylist(), dup_of.to_pylist()) == (["a", "a", "c"], [1, 2, 1], [None, "a", None])
    cluster, size, dup_of = row_verdicts(["a", "b"], empty_verdicts())
    assert (cluster.to_pylist(), size.to_pylist(), dup_of.to_pylist()) == (["a", "b"], [1, 1], [None, None])


def test_rows_by_size_counts_rows_without_a_verdict_as_clusters_of_one():
    """A cluster of three, and a candidate that proved different (size 1), among ten rows."""
    verdicts = pa.table({"node": pa.array([1, 2, 3, 4], pa.uint64()), "cluster": ["a", "a", "a", "d"],
                         "size": pa.array([3, 3, 3, 1], pa.int64()), "dup_of": [None, "a", "a", None]})
    assert rows_by_size(verdicts, 10) == {1: 7, 3: 3}
    assert rows_by_size(empty_verdicts(), 4) == {1: 4} and rows_by_size(empty_verdicts(), 0) == {}
