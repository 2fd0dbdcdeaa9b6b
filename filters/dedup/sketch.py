"""What near-duplicate dedup computes of a text: its shingle set and its MinHash signature.

The parameters travel together because every pass must compute them alike, and an index written
by an earlier run is only comparable when it was built with the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filters.dedup.minhash import signatures
from filters.dedup.shingles import Shingles, Tokens, token_shingles, tokens


@dataclass(frozen=True)
class Sketch:
    """Shingles (`ngram`-grams of `shingle` units, hashed with `hash`) and signatures of
    `bands * rows` permutations (`scheme` and `seed`: filters.dedup.minhash)."""

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

    def tokens(self, texts: pa.Array | list[str]) -> Tokens:
        """The normalised words (or characters) of raw texts, what both shingles and signatures are made of."""
        return tokens(texts, self.shingle, keep_words=self.hash == "sha1")

    def shingles(self, tok: Tokens) -> Shingles:
        return token_shingles(tok, self.ngram, self.shingle, self.hash)

    def signatures(self, tok: Tokens) -> np.ndarray:
        return signatures(self.shingles(tok), self.width, self.seed, self.scheme)
