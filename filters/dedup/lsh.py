"""LSH banding: which signatures become candidate pairs, and with what probability.

A signature of b x r values is cut into b bands of r rows; two texts are candidates when any
band is equal. For Jaccard similarity s the probability is P(s) = 1 - (1 - s^r)^b, an S-curve
whose steep part sits near (1/b)^(1/r). `optimal_params` picks (b, r) for a threshold the way
datasketch's `MinHashLSH` does: minimise the area of false positives below the threshold plus
the area of false negatives above it.
"""

from __future__ import annotations

import numpy as np

from filters.dedup.shingles import fmix64

_U64 = np.uint64


def candidate_probability(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


def _integral(f, lo: float, hi: float, points: int = 201) -> float:
    x = np.linspace(lo, hi, points)
    return float(np.trapezoid(f(x), x))


def false_positive_area(threshold: float, bands: int, rows: int) -> float:
    return _integral(lambda s: candidate_probability(s, bands, rows), 0.0, threshold)


def false_negative_area(threshold: float, bands: int, rows: int) -> float:
    return _integral(lambda s: 1.0 - candidate_probability(s, bands, rows), threshold, 1.0)


def optimal_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted error areas."""
    best, best_err = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * false_positive_area(threshold, b, r) + fn_weight * false_negative_area(threshold, b, r)
            if err < best_err:
                best, best_err = (b, r), err
    return best


def s_curve(bands: int, rows: int, points: int = 51) -> tuple[list[float], list[float]]:
    s = np.linspace(0.0, 1.0, points)
    return s.round(4).tolist(), candidate_probability(s, bands, rows).round(6).tolist()


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 bucket keys: the r values of a band hashed together with the band's index,
    so one key column can hold every band without two bands ever sharing a bucket."""
    n = signatures.shape[0]
    sig = signatures[:, : bands * rows].reshape(n, bands, rows).astype(_U64)
    key = np.broadcast_to(np.arange(1, bands + 1, dtype=_U64), (n, bands)).copy()
    for j in range(rows):
        key = fmix64(key * _U64(0x100000001B3) + sig[:, :, j])
    return key


def star_edges(buckets: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every bucket holding several nodes, an edge from its smallest node to each other one.

    A star keeps the edge count linear in the bucket size while preserving connectivity. Inputs are
    parallel uint64 arrays (one row per node and bucket); duplicate edges are removed.
    """
    if not len(buckets):
        return np.zeros(0, _U64), np.zeros(0, _U64)
    order = np.lexsort((nodes, buckets))
    b, v = buckets[order], nodes[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    anchor = np.repeat(v[starts], np.diff(np.r_[starts, len(b)]))
    keep = v != anchor
    pairs = np.unique(np.stack([anchor[keep], v[keep]], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]
