"""Semantic dedup's rules without Ray: stars not chains, the threshold, the survivor order, clusters."""

from __future__ import annotations

import numpy as np
import pytest

import filters.semdedup as semdedup
from filters.semdedup import assign, fit_centroids, in_sample, resolve

RULES = ["quality", "longest", "smallest_id"]


def _unit(degrees) -> np.ndarray:
    a = np.radians(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def _verdicts(ids, vectors, clusters=None, quality=None, length=None, threshold=0.9) -> dict:
    n = len(ids)
    table = resolve(ids, vectors, np.zeros(n, np.int32) if clusters is None else np.asarray(clusters),
                    np.full(n, np.nan) if quality is None else np.asarray(quality, float),
                    np.full(n, 100) if length is None else np.asarray(length), RULES, threshold)
    return {r["id"]: (r["semdup_of"], round(r["semdup_cosine"], 4)) for r in table.to_pylist()}


def test_a_row_is_removed_only_for_a_kept_row_it_is_similar_to():
    # a~b (cos 0.951) and b~c (0.951), but a vs c is 0.809: connected components would remove c for a
    verdicts = _verdicts(["a", "b", "c"], _unit([0, 18, 36]))
    assert verdicts == {"b": ("a", 0.9511)}


def test_threshold_is_inclusive_and_decides():
    v = _unit([0, 25.0])  # cosine 0.9063
    assert _verdicts(["a", "b"], v, threshold=0.9) == {"b": ("a", 0.9063)}
    assert _verdicts(["a", "b"], v, threshold=0.91) == {}
    same = _unit([10, 10])
    assert _verdicts(["a", "b"], same, threshold=1.0) == {"b": ("a", 1.0)}


def test_survivor_rule_is_dedups_and_independent_of_row_order():
    v = _unit([0, 5, 10])
    # quality first: c has the best score
    assert _verdicts(["a", "b", "c"], v, quality=[0.1, 0.2, 0.9]) == {"a": ("c", 0.9848), "b": ("c", 0.9962)}
    # no quality: the longest text, then the smallest id
    assert set(_verdicts(["a", "b", "c"], v, length=[5, 50, 5])) == {"a", "c"}
    assert set(_verdicts(["b", "a", "c"], v[[1, 0, 2]])) == {"b", "c"}
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(60)]
    vectors = _unit(rng.uniform(0, 40, 60))
    expected = _verdicts(ids, vectors, length=np.arange(60) % 7)
    order = rng.permutation(60)
    again = _verdicts([ids[i] for i in order], vectors[order], length=(np.arange(60) % 7)[order])
    assert again == expected and expected


def test_only_rows_of_one_cluster_are_compared():
    v = _unit([0, 1])
    assert _verdicts(["a", "b"], v, clusters=[0, 1]) == {}
    assert _verdicts(["a", "b"], v, clusters=[3, 3]) == {"b": ("a", 0.9998)}


def test_large_clusters_follow_the_same_greedy_rule(monkeypatch):
    rng = np.random.default_rng(1)
    vectors = _unit(rng.uniform(0, 90, 300))
    ids = [f"r{i:03d}" for i in range(300)]
    all_pairs = _verdicts(ids, vectors, threshold=0.999)
    monkeypatch.setattr(semdedup, "ALL_PAIRS_LIMIT", 10)  # the one-row-at-a-time path
    assert _verdicts(ids, vectors, threshold=0.999) == all_pairs
    monkeypatch.setattr(semdedup, "CHUNK_ROWS", 7)  # cosines a few rows at a time
    assert _verdicts(ids, vectors, threshold=0.999) == all_pairs
    assert len(all_pairs) > 50
    for dup, (kept, cosine) in all_pairs.items():
        assert kept not in all_pairs and cosine >= 0.999


def test_kmeans_separates_topics_and_assigns_by_cosine():
    vectors = _unit([0, 3, 6, 120, 123, 126])
    centroids = fit_centroids(vectors, 2, seed=0)
    labels = assign(vectors, centroids)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1)
    assert len(fit_centroids(_unit([7, 7, 7]), 5, seed=0)) == 1  # never more clusters than distinct vectors


def test_sample_is_a_seeded_function_of_the_id():
    ids = [f"doc{i}" for i in range(20000)]
    picked = in_sample(ids, 0.1, seed=3)
    assert 0.08 < picked.mean() < 0.12
    assert (in_sample(ids[::-1], 0.1, seed=3)[::-1] == picked).all()
    assert (in_sample(ids, 0.1, seed=4) != picked).any()
    assert in_sample(ids, 1.0, seed=3).all()


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n):
    assert _verdicts([f"r{i}" for i in range(n)], _unit([0] * n)) == {}
