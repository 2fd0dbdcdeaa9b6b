"""Star assignment of dedup clusters: a row is removed only for a representative it is similar to."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from filters.dedup.clusters import star_clusters
from filters.dedup.minhash import jaccard, pairwise_jaccard
from filters.dedup.verdicts import resolve_partition


def _similar_sets(sets, threshold=0.8):
    values = np.concatenate(sets).astype(np.uint32)
    offsets = np.r_[0, np.cumsum([len(x) for x in sets])]
    return lambda i, j: pairwise_jaccard(values, offsets, i, j) >= threshold


# A~B and B~C at J = 0.82, A and C at J = 0.67: a chain
CHAIN = [np.arange(0, 100), np.arange(10, 110), np.arange(20, 120)]


@pytest.mark.parametrize("all_pairs_limit", [200, 1])  # all pairs, and a large component's leaders
def test_a_chain_keeps_both_ends(all_pairs_limit):
    assert jaccard(CHAIN[0], CHAIN[1]) >= 0.8 > jaccard(CHAIN[0], CHAIN[2])
    rep = star_clusters(np.zeros(3, np.int64), _similar_sets(CHAIN), all_pairs_limit=all_pairs_limit)
    assert rep.tolist() == [0, 0, 2]


def test_unverified_candidates_split_and_components_stay_apart():
    sets = [np.arange(0, 100), np.arange(5, 105), np.arange(500, 600), np.arange(502, 600), np.arange(900, 950)]
    groups = np.array([0, 0, 0, 0, 1])
    rep = star_clusters(groups, _similar_sets(sets))
    assert rep.tolist() == [0, 0, 2, 2, 4]
    assert star_clusters(groups, _similar_sets(sets), all_pairs_limit=2).tolist() == rep.tolist()


def test_a_row_joins_the_best_ranked_similar_representative():
    # 0 and 1 are both representatives (J = 0.6); 2 is similar to both and joins 0, which ranks first
    sets = [np.arange(0, 100), np.arange(25, 125), np.arange(12, 112)]
    similar = _similar_sets(sets, 0.75)
    assert not similar(np.array([0]), np.array([1]))[0] and similar(np.array([0, 1]), np.array([2, 2])).all()
    assert star_clusters(np.zeros(3, np.int64), similar).tolist() == [0, 1, 0]


def test_a_similarity_matrix_works_like_a_predicate():
    matrix = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    assert star_clusters(np.zeros(3, np.int64), matrix).tolist() == [0, 0, 2]


def _random_families(rng, families: int):
    """Families of sets made by drifting a base set a few elements at a time, so members chain."""
    sets, groups = [], []
    for g in range(families):
        current = set(range(g * 10_000, g * 10_000 + 60))
        fresh = g * 10_000 + 1_000
        for _ in range(int(rng.integers(1, 12))):
            sets.append(np.array(sorted(current)))
            groups.append(g)
            drop = rng.choice(sorted(current), int(rng.integers(0, 8)), replace=False)
            current -= set(drop.tolist())
            current |= set(range(fresh, fresh + len(drop)))
            fresh += len(drop)
    return sets, np.array(groups)


@pytest.mark.parametrize("all_pairs_limit", [200, 4])
@pytest.mark.parametrize("seed", range(5))
def test_every_removed_row_is_similar_to_its_representative(seed, all_pairs_limit):
    """On random chaining families: a removed row's survivor meets the threshold (removal precision
    1.0), it is the best-ranked representative that does, and a representative matches no earlier one."""
    rng = np.random.default_rng(seed)
    sets, groups = _random_families(rng, 40)
    rep = star_clusters(groups, _similar_sets(sets), all_pairs_limit=all_pairs_limit)
    j = lambda a, b: jaccard(sets[a], sets[b])  # noqa: E731
    removed = 0
    for i, r in enumerate(rep.tolist()):
        assert groups[r] == groups[i] and rep[r] == r and r <= i
        earlier_reps = [k for k in range(i) if groups[k] == groups[i] and rep[k] == k]
        if all_pairs_limit == 4 and (groups == groups[i]).sum() > 4:
            earlier_reps = earlier_reps[:64]
        matches = [k for k in earlier_reps if j(k, i) >= 0.8]
        if r != i:
            removed += 1
            assert j(r, i) >= 0.8 and r == matches[0]
        else:
            assert not matches
    assert removed  # the families do have duplicates
    chained = [i for i, r in enumerate(rep.tolist()) if r == i and any(
        j(k, i) >= 0.8 for k in range(len(sets)) if groups[k] == groups[i] and k != i)]
    assert chained  # and rows that connected components would have removed


def _members(rows):
    """Member rows as members.member_rows makes them: (id, comp, quality, pinned, shingle set, signature)."""
    return pa.table({
        "node": pa.array(range(len(rows)), pa.uint64()), "id": [r[0] for r in rows], "comp": [r[1] for r in rows],
        "part": pa.array([0] * len(rows), pa.int32()), "quality": pa.array([r[2] for r in rows], pa.float64()),
        "length": [100] * len(rows), "pinned": [r[3] for r in rows],
        "shingles": pa.array([r[4] for r in rows], pa.list_(pa.uint32())),
        "signature": pa.array([r[5] for r in rows], pa.list_(pa.uint32())),
    })


def _verdicts(table, compare="jaccard"):
    out = resolve_partition(table, ["quality", "longest", "smallest_id"], compare, 0.8, 8)
    return {i: (c, s, d) for i, c, s, d in zip(out.column("node").to_pylist(), out.column("cluster").to_pylist(),
                                               out.column("size").to_pylist(), out.column("dup_of").to_pylist())}


def test_pinned_rows_come_first_and_each_stays_a_representative():
    sig_p, sig_q = list(range(8)), list(range(100, 108))
    sig_x = [99] + sig_p[1:]  # estimate 7/8 with p
    rows = [
        ("p", 0, None, True, [], sig_p),             # an earlier run's rows: signatures only
        ("q", 0, None, True, [], sig_p[:7] + [5]),  # similar to p: both stay (both were kept before)
        ("x", 0, 0.9, False, list(range(0, 100)), sig_x),      # best quality, but p ranks first
        ("y", 0, 0.5, False, list(range(10, 110)), [98, 97] + sig_p[2:]),  # x~y (J 0.82), estimate with p 6/8
        ("z", 1, 0.1, False, list(range(500, 600)), sig_q),
        ("w", 1, 0.2, False, list(range(505, 605)), sig_q),
    ]
    verdicts = _verdicts(_members(rows))
    assert set(verdicts) == {2, 3, 4, 5}  # verdicts of this run's rows only
    assert verdicts[2] == ("p", 1, "p")   # x is removed for the earlier row, not kept for its quality
    assert verdicts[3] == ("y", 1, None)  # y is similar to x only: x did not survive, so y stays
    assert verdicts[5] == ("w", 2, None) and verdicts[4] == ("w", 2, "w")


def test_verdicts_do_not_depend_on_row_order():
    rng = np.random.default_rng(3)
    sets, groups = _random_families(rng, 15)
    rows = [(f"r{k:03d}", int(g), float(rng.random()), False, s.tolist(), [0] * 8)
            for k, (s, g) in enumerate(zip(sets, groups))]
    first = _verdicts(_members(rows))
    perm = rng.permutation(len(rows))
    shuffled = _members([rows[k] for k in perm])
    again = {int(perm[i]): v for i, v in _verdicts(shuffled).items()}
    assert again == first
    assert any(d is not None for _, _, d in first.values())


def test_unverified_compares_by_the_signature_estimate():
    sig = list(range(8))
    rows = [("a", 0, None, False, [], sig), ("b", 0, None, False, [], [50] + sig[1:]),      # 7/8 with a
            ("c", 0, None, False, [], [50, 51] + sig[2:])]                                  # 7/8 with b, 6/8 with a
    assert _verdicts(_members(rows), "estimate") == {0: ("a", 2, None), 1: ("a", 2, "a"), 2: ("c", 1, None)}
