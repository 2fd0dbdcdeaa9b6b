"""MinHash signatures for a whole batch at once: rensa's Rust kernel, or datasketch's permutation schemes.

Schemes:
- `rensa` (the default): rensa's R-MinHash, in Rust, over the batch's flat shingle hashes; the
  signatures equal `rensa.RMinHash.digest_matrix_from_token_hash_sets` of the same hashes. Its kernel
  takes 2-4 us a document of 300 words and taking its rows (Python lists) into numpy about 7 us, against
  51 us for `affine32` in numpy (docs/dedup.md): the signatures were half of the signature pass. Its version of
  the algorithm goes into a dedup index's parameters, so that an index is never compared with
  signatures of another.
- `affine32` (datasketch >= 2.0 default): h -> a * fmix32(h) + b mod 2^32, a odd. Pure uint32
  arithmetic, half the memory traffic of `legacy`.
- `legacy` (datasketch < 2.0): h -> ((a * h + b) mod 2^64 mod (2^61 - 1)) & (2^32 - 1).

For the datasketch schemes, `Permutations(num_perm, seed, scheme)` draws its parameters exactly as
`datasketch.MinHash` does, so its signatures equal `datasketch.MinHash(num_perm, seed, scheme=...)`
updated with the same shingle hashes. The difference is the shape of the work: datasketch updates
one shingle at a time in Python; here a chunk of shingles x all permutations is one numpy
expression and `np.minimum.reduceat` takes the minimum per text.
"""

from __future__ import annotations

import itertools

import numpy as np
import rensa

from filters.dedup.shingles import Shingles, ranges

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint32((1 << 32) - 1)
DATASKETCH_SCHEMES = ("affine32", "legacy")
_CHUNK = 1 << 12  # shingles per numpy step: 4k x 112 permutations x 4 bytes = 1.8 MB, stays in cache


def signatures(sh: Shingles, num_perm: int, seed: int, scheme: str = "rensa") -> np.ndarray:
    """(number of texts, num_perm) uint32 signatures of `scheme`; a text without shingles gets all MAX_HASH."""
    if scheme != "rensa":
        return Permutations(num_perm, seed, scheme).signatures(sh)
    digests = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        sh.hashes.astype(np.uint64), sh.offsets.astype(np.uint64), num_perm, seed)
    n_docs = len(sh.offsets) - 1  # its rows come as Python lists, read here without a list of lists' checks
    flat = np.fromiter(itertools.chain.from_iterable(digests.to_rows()), dtype=np.uint32, count=n_docs * num_perm)
    return flat.reshape(n_docs, num_perm)


def scheme_version(scheme: str) -> str:
    """The scheme as a dedup index records it: rensa's with the version of its algorithm, whose digests
    a new version may change."""
    return f"rensa-{rensa.RMinHash.ALGORITHM_VERSION}" if scheme == "rensa" else scheme


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class Permutations:
    """The num_perm hash permutations of a MinHash, drawn from a seeded RandomState like datasketch."""

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32"):
        if scheme not in DATASKETCH_SCHEMES:
            raise ValueError(f"unknown datasketch MinHash scheme {scheme!r} (one of {', '.join(DATASKETCH_SCHEMES)})")
        self.num_perm, self.seed, self.scheme = num_perm, seed, scheme
        gen = np.random.RandomState(seed)
        if scheme == "affine32":
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        else:
            ab = np.array(
                [
                    (gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
                    for _ in range(num_perm)
                ],
                dtype=np.uint64,
            )
            self.a, self.b = ab[:, 0], ab[:, 1]

    def apply(self, hashes: np.ndarray) -> np.ndarray:
        """(len(hashes), num_perm) permuted values, as uint32."""
        if self.scheme == "affine32":
            return fmix32(hashes.astype(np.uint32))[:, None] * self.a[None, :] + self.b[None, :]
        h = hashes.astype(np.uint64)[:, None]
        return (((self.a[None, :] * h + self.b[None, :]) % MERSENNE_PRIME) & np.uint64(MAX_HASH)).astype(np.uint32)

    def signatures(self, sh: Shingles) -> np.ndarray:
        """(number of texts, num_perm) uint32 signatures; a text without shingles gets all MAX_HASH.

        The permuted values of a chunk of shingles go into one reused buffer that fits in the CPU
        cache: with 65k-shingle chunks and fresh temporaries the same arithmetic ran 2.4x slower.
        """
        n_docs = len(sh.offsets) - 1
        out = np.full((n_docs, self.num_perm), MAX_HASH, dtype=np.uint32)
        counts = np.diff(sh.offsets)
        buffer = np.empty((_CHUNK, self.num_perm), dtype=np.uint32)
        doc = 0
        while doc < n_docs:
            # take whole texts until the chunk is full (always at least one text)
            end = int(np.searchsorted(sh.offsets, sh.offsets[doc] + _CHUNK, side="right")) - 1
            end = min(max(end, doc + 1), n_docs)
            lo, hi = sh.offsets[doc], sh.offsets[end]
            if hi > lo:
                permuted = self._apply_into(sh.hashes[lo:hi], buffer)
                nonempty = np.nonzero(counts[doc:end])[0]
                starts = sh.offsets[doc:end][nonempty] - lo
                out[doc + nonempty] = np.minimum.reduceat(permuted, starts, axis=0)
            doc = end
        return out

    def _apply_into(self, hashes: np.ndarray, buffer: np.ndarray) -> np.ndarray:
        """`apply(hashes)`, computed in place in `buffer` when it is large enough (affine32)."""
        if self.scheme != "affine32" or len(hashes) > len(buffer):
            return self.apply(hashes)
        permuted = buffer[: len(hashes)]
        np.multiply(fmix32(hashes.astype(np.uint32))[:, None], self.a[None, :], out=permuted)
        permuted += self.b[None, :]
        return permuted


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """The MinHash estimate of Jaccard similarity: the share of equal signature slots (row by row
    for two stacks of signatures)."""
    return np.mean(sig_a == sig_b, axis=-1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets given as sorted unique arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (len(a) + len(b) - inter)


def pairwise_jaccard(values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the sets of rows a[k] and b[k], for every k, as `jaccard` computes it.

    The sets are sorted unique runs `values[offsets[i]:offsets[i + 1]]` (CSR). Every element is
    tagged with its pair's number; one sort of the tagged elements of both sides puts the shared
    ones next to each other, so all intersections come from one numpy pass instead of one
    `intersect1d` call per pair. Pairs go in chunks of about 4M elements to bound memory.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    len_a, len_b = offsets[a + 1] - offsets[a], offsets[b + 1] - offsets[b]
    inter = np.zeros(len(a), dtype=np.int64)
    ends = np.cumsum(len_a + len_b)
    lo = 0
    while lo < len(a):
        done = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, done + _PAIR_CHUNK, side="right")))
        inter[lo:hi] = _intersections(values, offsets, a[lo:hi], b[lo:hi])
        lo = hi
    union = len_a + len_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


_PAIR_CHUNK = 1 << 22


def _intersections(values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pair = np.arange(len(a), dtype=np.uint64)
    tagged = []
    for rows in (a, b):
        lengths = offsets[rows + 1] - offsets[rows]
        elements = values[ranges(offsets[rows], lengths)].astype(np.uint64)
        tagged.append((np.repeat(pair, lengths) << np.uint64(32)) | elements)
    keys = np.sort(np.concatenate(tagged))
    shared = keys[1:][keys[1:] == keys[:-1]]
    return np.bincount((shared >> np.uint64(32)).astype(np.int64), minlength=len(a))
