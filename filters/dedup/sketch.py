"""What near-duplicate dedup computes of a text: its shingle set and its MinHash signature.

The parameters travel together because every pass must compute them alike, and an index written
by an earlier run is only comparable when it was built with the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filters.dedup.minhash import Permutations
from filters.dedup.shingles import Shingles, normalized_shingles


@dataclass(frozen=True)
class Sketch:
    """Shingles (`ngram`-grams of `shingle` units, hashed with `hash`) and signatures of
    `bands * rows` permutations (datasketch's `scheme` and `seed`)."""

    ngram: int
    shingle: str
    hash: str
    seed: int
    scheme: str
    bands: int
    rows: int

    @property
    def width(self) -> int:
        return self.bands * self.rows

    def shingles(self, normalized: pa.Array) -> Shingles:
        return normalized_shingles(normalized, self.ngram, self.shingle, self.hash)

    def signatures(self, normalized: pa.Array) -> np.ndarray:
        return Permutations(self.width, self.seed, self.scheme).signatures(self.shingles(normalized))
