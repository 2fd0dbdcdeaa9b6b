"""Semantic dedup (SemDeDup, as NeMo Curator does it): k-means over text embeddings, then, inside
each cluster, the rows whose cosine to a better-ranked row reaches a threshold are duplicates.

Comparing every pair of a corpus is quadratic; k-means puts texts that are close in embedding space
in the same cluster, so only pairs inside a cluster are compared (a pair split across two clusters
is missed: that is the method's trade of recall for linear work). Inside a cluster, rows are
walked in the MinHash dedup's survivor order and assigned to representatives as stars
(`filters.dedup.clusters.star_clusters`), so a row is removed only for a kept row it is itself
similar to, never through a chain of pairs. No Ray here: the stage (stages/semdedup.py) runs
these functions in its tasks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import xxhash

from filters.dedup.clusters import star_clusters, survivor_order
from filters.embeddings import normalise

KMEANS_SAMPLE = 100_000  # k-means is fitted on at most this many rows; every row is then assigned
ROWS_PER_CLUSTER = 1_000  # the default number of clusters is the rows over this
CHUNK_ROWS = 1_024  # rows of a cluster whose cosines are computed at once
ALL_PAIRS_LIMIT = 2_000  # clusters up to this size go through star_clusters' vectorised all-pairs path

COSINE_SLACK = 1e-6  # float32 dot products of unit vectors are off by a few 1e-7: the same text is cosine 1

VERDICTS = pa.schema([("id", pa.string()), ("semdup_of", pa.string()), ("semdup_cosine", pa.float32())])


def in_sample(ids: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Which rows the k-means fit sees: a seeded hash of the id below `fraction`, so the sample is
    the same whatever the order of rows, blocks or workers."""
    if fraction >= 1:
        return np.ones(len(ids), dtype=bool)
    h = np.fromiter((xxhash.xxh3_64_intdigest(str(i).encode("utf-8"), seed=seed) for i in ids), dtype=np.uint64, count=len(ids))
    return h < np.uint64(int(fraction * 2**64))


def fit_centroids(sample: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Unit-length k-means centroids of (unit-length) sample vectors, at most one per distinct vector.

    scikit-learn's KMeans (k-means++ start, Lloyd's iterations in C) is the maintained reference
    implementation and is fast enough for a sample of 100k vectors on a CPU. On unit vectors the
    nearest centroid by Euclidean distance and by cosine (after renormalising) nearly coincide;
    rows are then assigned by cosine (`assign`), as NeMo Curator does.
    """
    from sklearn.cluster import KMeans

    distinct = len(np.unique(sample, axis=0)) if len(sample) else 0
    k = max(1, min(clusters, distinct))
    if distinct <= 1:
        return normalise(sample[:1].astype(np.float32)) if len(sample) else np.zeros((1, 1), np.float32)
    km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit(sample)
    return normalise(km.cluster_centers_.astype(np.float32))


def assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The cluster of every row: its centroid of highest cosine."""
    if not len(vectors):
        return np.zeros(0, dtype=np.int32)
    return np.argmax(vectors @ centroids.T, axis=1).astype(np.int32)


def representatives(vectors: np.ndarray, clusters: np.ndarray, threshold: float) -> np.ndarray:
    """For rows sorted by cluster, each cluster in survivor order: the row each one is removed for
    (itself when kept). A row's representative is the best-ranked kept row of its cluster whose
    cosine to it reaches `threshold`.

    Each cluster's similarity is one boolean matrix (m x m bytes for a cluster of m rows, from matrix
    products of 1,024 rows at a time), handed to the dedup's star assignment: its all-pairs path up to
    ALL_PAIRS_LIMIT rows, beyond that its leader path with no cap on the leaders, which is the
    same greedy rule one row at a time.
    """
    n = len(clusters)
    rep = np.arange(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1]]) if n else np.zeros(0, np.int64)
    for lo, hi in zip(starts.tolist(), np.r_[starts[1:], n].tolist()):
        m = hi - lo
        if m < 2:
            continue
        block = vectors[lo:hi]
        similar = np.empty((m, m), dtype=bool)
        for r in range(0, m, CHUNK_ROWS):  # cosines a chunk of rows at a time: only the booleans are m x m
            similar[r:r + CHUNK_ROWS] = block[r:r + CHUNK_ROWS] @ block.T >= np.float32(threshold - COSINE_SLACK)
        rep[lo:hi] = lo + star_clusters(np.zeros(m, np.int64), similar, all_pairs_limit=ALL_PAIRS_LIMIT, max_leaders=m)
    return rep


def resolve(ids: Sequence[str], vectors: np.ndarray, clusters: np.ndarray, quality: np.ndarray, length: np.ndarray,
            rules: Sequence[str], threshold: float) -> pa.Table:
    """The duplicates among rows (all of one or more whole clusters): (id, semdup_of, semdup_cosine),
    one row per removed row. The survivor rules are the MinHash dedup's (quality, longest, ...,
    the id last), so the verdicts do not depend on the order rows arrive in."""
    order = survivor_order(ids, quality, length, rules, groups=clusters)
    v, c = vectors[order], np.asarray(clusters)[order]
    rep = representatives(v, c, threshold)
    dup = np.flatnonzero(rep != np.arange(len(rep)))
    cosine = np.einsum("ij,ij->i", v[dup], v[rep[dup]]) if len(dup) else np.zeros(0, np.float32)
    sorted_ids = np.asarray(ids, dtype=object)[order]
    return pa.table({"id": pa.array(sorted_ids[dup].tolist(), pa.string()),
                     "semdup_of": pa.array(sorted_ids[rep[dup]].tolist(), pa.string()),
                     "semdup_cosine": pa.array(np.asarray(cosine, np.float32), pa.float32())}, schema=VERDICTS)
