"""Rows as nodes of the candidate graph: a 63-bit key per row id, found again by binary search.

Keys stand in for ids in every shuffle and on the driver (8 bytes instead of a string). Rows of
an earlier run's index (`against:`) get the top bit, so they never collide with this run's rows.
"""

from __future__ import annotations

import numpy as np
import xxhash

OLD_BIT = np.uint64(1 << 63)  # node keys of rows from an earlier run's index


def node_keys(ids: list[str], old: bool = False) -> np.ndarray:
    """A 63-bit key per id; rows of an earlier run get the top bit, so they never collide with ours."""
    keys = np.fromiter((xxhash.xxh3_64_intdigest(str(i).encode("utf-8")) for i in ids), dtype=np.uint64, count=len(ids))
    keys &= ~OLD_BIT
    return keys | OLD_BIT if old else keys


def lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in `sorted_keys`, or -1."""
    if not len(sorted_keys):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == keys, pos, -1)
