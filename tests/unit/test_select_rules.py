"""The rules of the `select` stage: Deita's score-first selection and weighted farthest-first."""

from __future__ import annotations

import numpy as np
import pytest

from filters.select import CHOSEN, OVER_BUDGET, TOO_SIMILAR, budget_of, combined_score, score_order, select


def unit(*rows) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_score_first_skips_a_better_scored_near_copy_for_the_next_different_row():
    vectors = unit([1, 0, 0], [1, 0.05, 0], [0, 1, 0], [0, 0, 1])
    ids = ["best", "copy_of_best", "other", "third"]
    s = select(vectors, ids, np.array([0.9, 0.8, 0.5, 0.1]), budget=2, max_cosine=0.9)
    assert s.outcome.tolist() == [CHOSEN, TOO_SIMILAR, CHOSEN, OVER_BUDGET]
    assert s.nearest[1] == 0 and s.nearest_cosine[1] > 0.99  # why the copy went: its nearest chosen row
    assert s.rank.tolist() == [0, 1, 2, 3]


def test_score_first_compares_across_chunks_and_inside_one(monkeypatch):
    """Chunking is an implementation detail: the same choices with chunks of 1, 2 and 256 rows."""
    import filters.select as rules

    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    vectors = unit(*np.concatenate([base, base[:20] + rng.normal(scale=0.05, size=(20, 16))]))
    ids = [f"r{i:02d}" for i in range(60)]
    score = rng.random(60)
    outcomes = []
    for chunk in (1, 2, 256):
        monkeypatch.setattr(rules, "CHUNK", chunk)
        outcomes.append(select(vectors, ids, score, budget=45, max_cosine=0.95).outcome.tolist())
    assert outcomes[0] == outcomes[1] == outcomes[2]
    chosen = np.flatnonzero(np.array(outcomes[0]) == CHOSEN)
    sims = vectors[chosen] @ vectors[chosen].T
    assert (sims[~np.eye(len(chosen), dtype=bool)] < 0.95).all()  # no two chosen rows as close as the ceiling
    assert len(chosen) == 40  # one of each planted pair: the 40 distinct directions, then nothing left


def test_k_center_covers_the_space_before_adding_neighbours():
    # two tight groups and one lone row: three picks take one from each, whatever the group sizes
    vectors = unit([1, 0, 0], [1, 0.01, 0], [1, 0.02, 0], [0, 1, 0], [0, 1, 0.01], [0, 0, 1])
    ids = list("abcdef")
    s = select(vectors, ids, np.ones(6), budget=3, method="k_center")
    assert sorted(np.flatnonzero(s.chosen).tolist()) == [0, 3, 5]
    assert (s.outcome[[1, 2, 4]] == OVER_BUDGET).all() and s.nearest[1] == 0


def test_k_center_weighs_distance_by_score():
    vectors = unit([1, 0], [0, 1], [0.7, 0.7])
    s = select(vectors, ["a", "b", "c"], np.array([1.0, 0.1, 0.9]), budget=2, method="k_center")
    # b is farther from a (cosine 0) than c (0.71), but its score share is 0.1: 1 x 0.1 < 0.29 x 0.9
    assert np.flatnonzero(s.chosen).tolist() == [0, 2]


def test_scores_multiply_missing_ranks_last_and_ids_break_ties():
    score = combined_score([np.array([2.0, 1.0, np.nan, 1.0]), np.array([0.5, 1.0, 1.0, 1.0])], 4)
    assert score[:2].tolist() == [1.0, 1.0] and np.isnan(score[2])
    assert score_order(["d", "b", "a", "c"], score).tolist() == [1, 3, 0, 2]  # b, c, d tie at 1.0; a is missing
    assert combined_score([], 3).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("keep, share, expected", [(3, None, 3), (50, None, 10), (None, 0.25, 2), (None, None, 10)])
def test_budget(keep, share, expected):
    assert budget_of(10, keep, share) == expected


def test_selection_does_not_depend_on_input_order():
    rng = np.random.default_rng(1)
    vectors = unit(*rng.normal(size=(30, 8)))
    ids = [f"id{i}" for i in range(30)]
    score = np.round(rng.random(30), 1)  # many ties, broken by id
    perm = rng.permutation(30)
    for method in ("score_first", "k_center"):
        a = select(vectors, ids, score, budget=12, method=method, max_cosine=0.8)
        b = select(vectors[perm], [ids[i] for i in perm], score[perm], budget=12, method=method, max_cosine=0.8)
        assert {ids[i] for i in np.flatnonzero(a.chosen)} == {ids[perm[i]] for i in np.flatnonzero(b.chosen)}
