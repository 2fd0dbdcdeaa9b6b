"""Text normalisation and shingling, vectorised over a whole batch with pyarrow and numpy.

A batch of texts becomes one flat array of 32-bit shingle hashes plus the offsets of each text
in it (CSR layout), which is what the MinHash step consumes without a Python loop per shingle.

Two shingle hashes are offered:
- `sha1`: the 32-bit SHA-1 prefix that `datasketch.MinHash` uses by default, on the shingle's
  words joined by one space. Bit-exact with datasketch, but one Python call per shingle.
- `xxh3`: every distinct word of the batch is hashed once with xxh3-64, and the n words of a
  shingle are combined with numpy arithmetic. No Python work per shingle, which is what makes
  the signature pass fast. `shingle_hash_xxh3` is the same function for one shingle, so a
  signature can still be checked against `datasketch.MinHash(hashfunc=shingle_hash_xxh3)`.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_U64 = np.uint64
_COMBINE = _U64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial that joins a shingle's tokens
_CHAR_SEED = _U64(0xD6E8FEB86659FD93)
# Every ASCII punctuation mark and symbol is outside letters, digits and marks: normalisation turns it into
# a gap, so at the edge of a piece it is simply cut.
_ASCII_PUNCTUATION = string.punctuation


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: an avalanching bijection, so combined values look random."""
    x = x ^ (x >> _U64(33))
    x = x * _U64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> _U64(33))
    x = x * _U64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> _U64(33))


def normalize(texts: pa.Array | Sequence[str | None]) -> pa.Array:
    """Lower case, NFKC, every run of digits -> "0", every run of non-alphanumerics -> one space.

    As FineWeb's dedup does, so that casing, punctuation and numbers (dates, counters) do not hide
    a copy. Runs in Arrow's C++ kernels over the whole batch. Only the runs that hold something
    other than ASCII whitespace go through the regex; splitting on whitespace and joining with one
    space does the rest, which avoids one regex replacement per word gap (a third of the time).
    """
    t = pc.replace_substring_regex(_folded(texts), r"[^\p{L}\p{N}\p{M}\t\n\v\f\r ]+", " ")
    return pc.binary_join(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(t)), " ")


def _strings(texts: pa.Array | Sequence[str | None]) -> pa.Array:
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), type=pa.string())
    return pc.fill_null(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr, "")


def _folded(texts: pa.Array | Sequence[str | None]) -> pa.Array:
    """Lower case, NFKC, digit runs -> "0". NFKC runs on the rows that are not pure ASCII only:
    it leaves ASCII unchanged, and it was the most expensive kernel of the normalisation."""
    t = pc.utf8_lower(_strings(texts))
    other = pc.invert(pc.string_is_ascii(t))
    if pc.any(other).as_py():
        t = pc.replace_with_mask(t, other, pc.utf8_normalize(t.filter(other), "NFKC"))
    return pc.replace_substring_regex(t, r"\p{Nd}+", "0")


@dataclass
class Tokens:
    """The tokens of a batch of texts in CSR layout: text i owns values[offsets[i]:offsets[i+1]]."""

    values: np.ndarray  # uint64 token hashes (words) or mixed code points (chars)
    offsets: np.ndarray  # int64, len = number of texts + 1
    words: list[str] | None = None  # the token strings, kept for the sha1 path

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(starts[k], starts[k] + lengths[k]) over k."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(total)


def word_tokens(texts: pa.Array | Sequence[str | None], keep_words: bool = False) -> Tokens:
    """The words of `normalize(texts)` (maximal runs of letters, digits and marks), as xxh3 hashes.

    Lower case and NFKC work code point by code point, and no ASCII whitespace joins with what
    follows it, so a text can be cut at its ASCII whitespace first and every distinct piece of the
    batch normalised once: the pieces repeat (a batch of 1,024 documents of 300 words has about
    20k distinct ones), so the regex and NFKC kernels see a fifteenth of the text. A piece gives
    zero or more words ("U.S." gives two); each word is hashed once per distinct piece.
    """
    lists = pc.ascii_split_whitespace(_strings(texts))
    encoded = pc.dictionary_encode(pc.list_flatten(lists))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    piece = encoded.indices.to_numpy(zero_copy_only=False)
    normalized = _normalize_pieces(encoded.dictionary)
    piece_words = pc.split_pattern(normalized, " ")
    empty = pc.equal(normalized, "").to_numpy(zero_copy_only=False)  # splits into one "" word
    counts = np.where(empty, 0, pc.list_value_length(piece_words).to_numpy(zero_copy_only=False)).astype(np.int64)
    firsts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=firsts[1:])
    words = pc.list_flatten(piece_words.filter(pa.array(~empty)))
    plain = words.to_pylist()
    hashes = np.fromiter((xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in plain), dtype=_U64, count=len(plain))
    per_piece = counts[piece]
    taken = ranges(firsts[piece], per_piece)
    ends = np.zeros(len(piece) + 1, dtype=np.int64)
    np.cumsum(per_piece, out=ends[1:])
    offsets = ends[lists.offsets.to_numpy()]  # each text's pieces are a run of them
    return Tokens(hashes[taken], offsets, words.take(pa.array(taken)).to_pylist() if keep_words else None)


def _normalize_pieces(pieces: pa.Array) -> pa.Array:
    """`normalize` of pieces without ASCII whitespace. Most distinct pieces are ASCII letters with at most
    punctuation at their edges ("word", "(word),"), whose normal form is the letters in lower case: only the
    others (a sixth of them on real text: digits, accents, other scripts) take the regex and NFKC kernels,
    which halves the time of this step."""
    core = pc.ascii_trim(pieces, _ASCII_PUNCTUATION)
    other = pc.invert(pc.ascii_is_alpha(core))
    return pc.replace_with_mask(pc.ascii_lower(core), other, normalize(pieces.filter(other)))


def tokens(texts: pa.Array | Sequence[str | None], unit: str = "word", keep_words: bool = False) -> Tokens:
    """What shingles of `unit` are made of: the words or the characters of the normalised texts."""
    if unit == "word":
        return word_tokens(texts, keep_words)
    if unit == "char":
        return char_tokens(normalize(texts))
    raise ValueError(f"unknown shingle unit {unit!r} (word or char)")


def char_tokens(normalized: pa.Array) -> Tokens:
    """Code points of the normalised texts (spaces included), mixed so that they spread over 64 bits."""
    texts = normalized.to_pylist()
    arrays = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(arrays).astype(_U64) if arrays else np.zeros(0, _U64)
    return Tokens(fmix64(values + _CHAR_SEED), offsets, list("".join(texts)))


@dataclass
class Shingles:
    """32-bit shingle hashes of a batch in CSR layout (duplicates within a text are kept)."""

    hashes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len = number of texts + 1

    def of(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]

    def unique(self) -> "Shingles":
        """The shingle set of every text as a sorted run without repeats, the input of exact
        Jaccard: one sort of (text, hash) keys for the whole batch."""
        n = len(self.offsets) - 1
        text = np.repeat(np.arange(n, dtype=np.uint64), np.diff(self.offsets))
        keys = np.sort((text << _U64(32)) | self.hashes.astype(_U64))
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys  # 6x faster than np.unique
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount((keys >> _U64(32)).astype(np.int64), minlength=n), out=offsets[1:])
        return Shingles((keys & _U64(0xFFFFFFFF)).astype(np.uint32), offsets)

    def unique_sets(self) -> list[np.ndarray]:
        """The shingle set of every text as a sorted array."""
        sets = self.unique()
        return [sets.of(i) for i in range(len(sets.offsets) - 1)]


def _shingle_starts(offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and token count of every shingle (all n-grams, or the whole text when shorter), and the
    CSR offsets of each text's shingles."""
    lengths = np.diff(offsets)
    counts = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    doc = np.repeat(np.arange(len(lengths)), counts)
    first = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    starts = offsets[:-1][doc] + (np.arange(len(doc)) - first[:-1][doc])
    sizes = np.minimum(lengths[doc], n)
    return starts, sizes, first


def _fold32(h: np.ndarray) -> np.ndarray:
    return (fmix64(h) & _U64(0xFFFFFFFF)).astype(np.uint32)


def combine_tokens(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray, n: int) -> np.ndarray:
    """h = fold32(fmix64(sum_j token[start + j] * C^(n-1-j) + size)), over j < size.

    Shingles of n tokens (all but those of texts shorter than n) are computed at every token
    position at once with n shifted slices of `values`, in place, and the starts picked after:
    no gather per token."""
    out = np.empty(len(starts), dtype=np.uint32)
    full = sizes == n
    if full.any():
        acc = np.full(len(values) - n + 1, n, dtype=_U64)
        for j in range(n):
            acc *= _COMBINE
            acc += values[j : j + len(acc)]
        out[full] = _fold32(acc[starts[full]])
    if not full.all():
        short_starts, short_sizes = starts[~full], sizes[~full]
        acc = short_sizes.astype(_U64)
        for j in range(n):
            valid = j < short_sizes
            term = values[np.where(valid, short_starts + j, 0)]
            acc = acc * _COMBINE + np.where(valid, term, _U64(0))
        out[~full] = _fold32(acc)
    return out


def shingle_hash_xxh3(shingle: str, n: int, unit: str = "word") -> int:
    """The `xxh3` hash of one shingle string, as `shingles(...)` computes it for a whole batch."""
    if unit == "word":
        tokens = shingle.split(" ")
        values = np.array([xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in tokens], dtype=_U64)
    else:
        tokens = list(shingle)
        values = fmix64(np.array([ord(c) for c in tokens], dtype=_U64) + _CHAR_SEED)
    return int(combine_tokens(values, np.zeros(1, np.int64), np.array([len(tokens)]), n)[0])


def sha1_hash32(data: bytes) -> int:
    """datasketch's default hash: the first 4 bytes of SHA-1, little endian."""
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def shingles(texts: pa.Array | Sequence[str | None], n: int = 5, unit: str = "word", hash: str = "xxh3") -> Shingles:
    """Shingle hashes of a batch of raw texts: normalise, tokenize, then hash every n-gram.

    A text shorter than n tokens gives one shingle of all its tokens, so short texts still dedup;
    an empty text gives none.
    """
    return token_shingles(tokens(texts, unit, keep_words=hash == "sha1"), n, unit, hash)


def token_shingles(tok: Tokens, n: int = 5, unit: str = "word", hash: str = "xxh3") -> Shingles:
    """`shingles` of texts already split into `tokens(texts, unit)` (with their words for sha1)."""
    sep = " " if unit == "word" else ""
    starts, sizes, first = _shingle_starts(tok.offsets, n)
    if hash == "xxh3":
        hashes = combine_tokens(tok.values, starts, sizes, n)
    elif hash == "sha1":
        words = tok.words
        hashes = np.fromiter(
            (sha1_hash32(sep.join(words[s : s + k]).encode("utf-8")) for s, k in zip(starts.tolist(), sizes.tolist())),
            dtype=np.uint32,
            count=len(starts),
        )
    else:
        raise ValueError(f"unknown shingle hash {hash!r} (xxh3 or sha1)")
    return Shingles(hashes, first)


def reference_shingles(text: str, n: int = 5, unit: str = "word") -> list[str]:
    """The shingle strings of one text, one at a time: what a plain datasketch user would feed."""
    norm = normalize([text])[0].as_py()
    tokens = norm.split() if unit == "word" else list(norm)
    sep = " " if unit == "word" else ""
    if not tokens:
        return []
    if len(tokens) < n:
        return [sep.join(tokens)]
    return [sep.join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
