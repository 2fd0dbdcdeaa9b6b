"""MinHash, LSH and clustering pieces of dedup, checked against datasketch and by hand."""

from __future__ import annotations

import csv

import datasketch
import numpy as np
import pytest
import rensa
from datasketch.lsh import _optimal_param

from filters.dedup import boilerplate
from filters.dedup.clusters import key_components, survivor_order
from filters.dedup.lsh import band_keys, candidate_probability, optimal_params, star_edges
from filters.dedup.minhash import MAX_HASH, Permutations, estimated_jaccard, jaccard, pairwise_jaccard, signatures
from filters.dedup.shingles import Shingles, normalize, reference_shingles, shingle_hash_xxh3, shingles

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again in 2024!",
    "short text",
    "",
    "Ein kleiner Text über Äpfel und Birnen, die im Garten wachsen und reifen.",
    "   ",
    "Numbers 12, 345 and 6789 become zeros; punctuation... goes away!!!",
]


def _datasketch(text, num_perm, seed, scheme, hash_, unit, n=5):
    kw = {} if hash_ == "sha1" else {"hashfunc": lambda s: shingle_hash_xxh3(s, n, unit)}
    m = datasketch.MinHash(num_perm, seed, scheme=scheme, **kw)
    for s in reference_shingles(text, n, unit):
        m.update(s.encode("utf-8") if hash_ == "sha1" else s)
    return m.hashvalues.astype(np.uint64)


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("hash_", ["sha1", "xxh3"])
@pytest.mark.parametrize("unit", ["word", "char"])
@pytest.mark.parametrize("num_perm,seed", [(16, 1), (112, 7), (128, 42)])
def test_signatures_equal_datasketch(scheme, hash_, unit, num_perm, seed):
    sig = Permutations(num_perm, seed, scheme).signatures(shingles(TEXTS, 5, unit, hash_))
    for i, text in enumerate(TEXTS):
        assert np.array_equal(sig[i].astype(np.uint64), _datasketch(text, num_perm, seed, scheme, hash_, unit)), text


def test_signatures_of_real_text_equal_datasketch(shared_data):
    with open(shared_data / "benchmarks" / "gsm8k" / "test.jsonl") as f:
        import json

        texts = [json.loads(line)["question"] for _, line in zip(range(30), f)]
    sig = Permutations(112, 1).signatures(shingles(texts, 5, "word", "sha1"))
    for i, text in enumerate(texts):
        assert np.array_equal(sig[i].astype(np.uint64), _datasketch(text, 112, 1, "affine32", "sha1", "word"))


@pytest.mark.parametrize("unit", ["word", "char"])
@pytest.mark.parametrize("num_perm,seed", [(16, 1), (112, 7)])
def test_rensa_signatures_equal_rensas_own_per_text_digests(unit, num_perm, seed):
    """The batch goes to rensa as one flat buffer with offsets; each row must be the digest rensa gives that
    text's hashes alone (empty texts included: all MAX_HASH, as the datasketch schemes give)."""
    sh = shingles(TEXTS, 5, unit)
    sig = signatures(sh, num_perm, seed, "rensa")
    own = rensa.RMinHash.digest_matrix_from_token_hash_sets([sh.of(i).tolist() for i in range(len(TEXTS))], num_perm, seed)
    assert sig.dtype == np.uint32 and np.array_equal(sig, np.array(own.to_rows()))
    assert (sig[[2, 4]] == MAX_HASH).all() and not (sig[[0, 1, 3, 5]] == MAX_HASH).any()


def test_rensa_estimates_jaccard_as_well_as_datasketchs_scheme():
    """Pairs of known Jaccard similarity: the share of equal slots of rensa's signatures estimates it within
    the error of a 448-slot MinHash, like affine32's."""
    rng = np.random.default_rng(3)
    sizes = [(rng.integers(50, 400), rng.integers(0, 300)) for _ in range(200)]
    pairs = _pairs_of_known_jaccard(rng, sizes)
    truth = np.array([shared / (shared + 2 * own) for shared, own in sizes])
    for scheme in ("rensa", "affine32"):
        sig = signatures(pairs, 448, 1, scheme)
        error = estimated_jaccard(sig[0::2], sig[1::2]) - truth
        assert abs(error.mean()) < 0.01 and np.abs(error).max() < 0.1, scheme


@pytest.mark.parametrize("scheme", ["rensa", "affine32"])
def test_candidates_follow_the_s_curve(scheme):
    """What LSH recall rests on: two texts of Jaccard s share one of 14 bands of 8 slots with probability
    1 - (1 - s^8)^14. 2,000 pairs of 300-shingle sets at each s, for either scheme."""
    rng = np.random.default_rng(7)
    n = 300
    for s in (0.7, 0.8, 0.9):
        shared = int(round(2 * n * s / (1 + s)))
        sig = signatures(_pairs_of_known_jaccard(rng, [(shared, n - shared)] * 2000), 112, 1, scheme)
        candidates = (sig[0::2] == sig[1::2]).reshape(-1, 14, 8).all(axis=2).any(axis=1).mean()
        assert abs(candidates - candidate_probability(shared / (2 * n - shared), 14, 8)) < 0.03, (s, candidates)


def _pairs_of_known_jaccard(rng, sizes: list[tuple[int, int]]) -> Shingles:
    """Texts 2k and 2k + 1 share `shared` random hashes and own `own` each: Jaccard shared / (shared + 2 own)."""
    sets = []
    for shared, own in sizes:
        u = rng.integers(0, 2**32, shared + 2 * own, dtype=np.uint64).astype(np.uint32)
        sets += [u[:shared + own], np.r_[u[:shared], u[shared + own:]]]
    return Shingles(np.concatenate(sets), np.r_[0, np.cumsum([len(x) for x in sets])])


def test_normalisation_hides_case_punctuation_and_numbers():
    a, b = normalize(["Hello, World! It's 2024.", "hello world it s 1999"]).to_pylist()
    assert a == b == "hello world it s 0"


def test_short_text_is_one_shingle_and_empty_has_none():
    sh = shingles(["one two", "", "a b c d e f"], n=5)
    assert np.diff(sh.offsets).tolist() == [1, 0, 2]


def test_optimal_params_match_datasketch():
    for threshold, num_perm in [(0.5, 64), (0.8, 112), (0.9, 128)]:
        assert optimal_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_s_curve_is_steep_around_its_middle():
    mid = (1 / 14) ** (1 / 8)
    assert candidate_probability(mid - 0.15, 14, 8) < 0.2 < 0.5 < candidate_probability(mid + 0.1, 14, 8)


def test_band_keys_equal_only_for_equal_bands():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(3, 16), dtype=np.uint32)
    sig[1, :4] = sig[0, :4]  # band 0 shared by rows 0 and 1
    sig[2, 4:8] = sig[0, :4]  # same values in another band: not a shared bucket
    keys = band_keys(sig, 4, 4)
    assert keys[0, 0] == keys[1, 0]
    assert len(set(keys[:, 1:].ravel().tolist()) | {keys[2, 1]}) == 9 and keys[2, 1] != keys[0, 0]


def test_star_edges_connect_each_bucket():
    buckets = np.array([5, 5, 5, 9, 9, 7], dtype=np.uint64)
    nodes = np.array([30, 10, 20, 10, 40, 50], dtype=np.uint64)
    a, b = star_edges(buckets, nodes)
    assert sorted(zip(a.tolist(), b.tolist())) == [(10, 20), (10, 30), (10, 40)]


def test_components_of_keyed_edges():
    keys, labels = key_components(np.array([1, 2, 10], dtype=np.uint64), np.array([2, 3, 11], dtype=np.uint64))
    comp = dict(zip(keys.tolist(), labels.tolist()))
    assert comp[1] == comp[2] == comp[3] != comp[10] == comp[11]


def test_survivor_order_rules_and_tie_break():
    ids = ["c", "a", "b", "d"]
    quality = np.array([0.9, np.nan, 0.9, 0.1])
    length = np.array([10, 50, 20, 99])
    assert survivor_order(ids, quality, length, ["quality", "longest"]).tolist() == [2, 0, 3, 1]
    assert survivor_order(ids, quality, length, ["shortest"]).tolist() == [0, 2, 1, 3]
    assert survivor_order(ids, quality, length, []).tolist() == [1, 2, 0, 3]
    pinned = np.array([False, False, False, True])
    assert survivor_order(ids, quality, length, ["quality"], pinned)[0] == 3


def test_survivor_order_groups_come_first():
    ids = ["c", "a", "b", "d"]
    order = survivor_order(ids, np.full(4, np.nan), np.array([1, 2, 3, 4]), ["longest"], groups=np.array([1, 0, 1, 0]))
    assert order.tolist() == [3, 1, 2, 0]


def test_pairwise_jaccard_equals_jaccard_of_each_pair():
    rng = np.random.default_rng(0)
    sets = [np.unique(rng.integers(0, 60, rng.integers(0, 40))).astype(np.uint32) for _ in range(30)]
    values = np.concatenate(sets)
    offsets = np.r_[0, np.cumsum([len(x) for x in sets])]
    a, b = rng.integers(0, 30, 500), rng.integers(0, 30, 500)
    expected = [jaccard(sets[i], sets[j]) for i, j in zip(a, b)]
    assert pairwise_jaccard(values, offsets, a, b).tolist() == expected


def test_unique_shingle_sets_per_text():
    sh = shingles(TEXTS + ["a b c d e a b c d e a b c d e"])
    sets = sh.unique_sets()
    assert [s.tolist() for s in sets] == [np.unique(sh.of(i)).tolist() for i in range(len(sets))]
    assert len(sets[-1]) == 5


def test_boilerplate_counts_documents_not_occurrences():
    texts = ["menu item one\nbody a\nmenu item one", "menu item one\nbody b", "body c"]
    hashes = boilerplate.unit_hashes(texts, "line", 3)
    repeated = np.sort(boilerplate.repeated_hashes(hashes, 1))
    cleaned, removed = boilerplate.remove_units(texts, "line", 3, repeated)
    assert cleaned == ["body a", "body b", "body c"] and removed.tolist() == [2, 1, 0]
    assert len(boilerplate.repeated_hashes(hashes, 2)) == 0


def test_hashed_jaccard_equals_jaccard_of_shingle_strings(shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        texts = [r[2] for r in csv.reader(f) if len(r[2].split()) > 30][:20]
    for text in texts:
        edited = " ".join(text.split()[:-3] + ["zzz", "yyy"])
        a, b = shingles([text, edited]).unique_sets()
        sa, sb = set(reference_shingles(text)), set(reference_shingles(edited))
        assert jaccard(a, b) == pytest.approx(len(sa & sb) / len(sa | sb))
