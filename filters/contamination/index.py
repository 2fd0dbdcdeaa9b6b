"""An index of benchmark n-grams and the scanner that finds them in training text.

Every word of the benchmarks gets an integer id; a batch of texts is normalised and mapped to ids by
Arrow kernels (words no benchmark uses map to 0, and a window holding a 0 cannot match). An n-gram is
hashed to 64 bits as a random linear combination of its word ids, so a whole batch of texts is hashed
with a handful of numpy operations and looked up with one `searchsorted` against the sorted keys.
Only rows that hit go back to Python, to turn word positions into character spans.

Grams are formed inside each part of an item (question, choice, answer...). A part of at least `n`
words gives its `n`-grams. A shorter part is indexed whole, as one shorter gram, if it has at least
`min_words` words when it is the item's first part (the question or prompt: sentences written for
the benchmark) or `min_words_answer` words otherwise (choices and short answers are phrases that
ordinary text uses too: "the Immigration and Nationality Act of 1965"). Anything shorter is not
indexed on its own. A multiple-choice item left with nothing indexed ("What are histones?" with
one-word choices) has its question indexed whole from `CONFIRM_MIN_WORDS` words, and counts as found
only where at least two of its choices stand within `CONFIRM_WINDOW` words of it. An item with no
indexed gram at all is reported as undetectable.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.contamination.benchmarks import BenchmarkItem
from filters.contamination.normalize import arrow_words, words, words_with_offsets

_SEED = 0x5EED_C0DE
CONFIRM_MIN_WORDS = 3
CONFIRM_WINDOW = 64


@dataclasses.dataclass(frozen=True)
class Hit:
    """One benchmark item found in one row."""

    item: BenchmarkItem
    matched: int  # distinct grams of the item found in the row
    coverage: float  # matched / the item's indexed grams
    spans: tuple[tuple[int, int], ...]  # [start, end) character spans of the matches in the row text

    def as_record(self) -> dict:
        return {
            "benchmark": self.item.benchmark,
            "item_id": self.item.item_id,
            "matched": self.matched,
            "coverage": round(self.coverage, 6),
            "spans": [{"start": s, "end": e} for s, e in self.spans],
        }


@dataclasses.dataclass(frozen=True)
class IndexStats:
    items: int
    grams: int
    ignored_common: int  # grams in more than max_item_frequency items
    ignored_background: int  # grams found in the background corpus
    undetectable_items: int  # items with no gram left (all parts too short, or all grams ignored)
    confirmed_items: int = 0  # short multiple-choice items found only with their choices nearby


class NgramIndex:
    """Sorted gram keys; `postings[offsets[k]:offsets[k + 1]]` are the items holding key k."""

    def __init__(self, n: int, items: list[BenchmarkItem], vocab: dict[str, int], lengths: list[int],
                 keys: np.ndarray, offsets: np.ndarray, postings: np.ndarray, item_grams: np.ndarray,
                 stats: IndexStats, confirm: dict[int, tuple[str, ...]]):
        self.n = n
        self.items = items
        self.vocab = vocab
        self.lengths = lengths
        self.keys = keys
        self.offsets = offsets
        self.postings = postings
        self.item_grams = item_grams
        self.stats = stats
        self.confirm = confirm  # item -> its normalised choices, for items found only with them
        self.vocab_array = pa.array(list(vocab), pa.large_string())  # position + 1 = word id

    @classmethod
    def build(cls, items: Sequence[BenchmarkItem], n: int = 13, min_words: int = 6, min_words_answer: int = 8,
              max_item_frequency: int = 10, background: Iterable[str] = ()) -> "NgramIndex":
        if not (1 <= min_words <= n and 1 <= min_words_answer <= n):
            raise ValueError(f"min_words and min_words_answer must be between 1 and n ({n})")
        items = list(items)
        vocab: dict[str, int] = {}
        gram_keys: list[np.ndarray] = []
        gram_items: list[np.ndarray] = []
        lengths: set[int] = set()
        confirm: dict[int, tuple[str, ...]] = {}
        for i, item in enumerate(items):
            parts = [words(p) for p in item.parts]
            indexed = [ws for k, ws in enumerate(parts) if len(ws) >= (min_words if k == 0 else min_words_answer)]
            if not indexed and len(parts) >= 3 and len(parts[0]) >= CONFIRM_MIN_WORDS:
                indexed = [parts[0]]
                confirm[i] = tuple(" ".join(ws) for ws in parts[1:] if ws)
            hashes = []
            for ws in indexed:
                ids = np.array([vocab.setdefault(w, len(vocab) + 1) for w in ws], dtype=np.uint64)
                length = min(n, len(ws))
                lengths.add(length)
                hashes.append(_window_hashes(ids, length))
            if hashes:
                h = np.unique(np.concatenate(hashes))
                gram_keys.append(h)
                gram_items.append(np.full(len(h), i, dtype=np.int32))
        all_keys = np.concatenate(gram_keys) if gram_keys else np.empty(0, np.uint64)
        all_items = np.concatenate(gram_items) if gram_items else np.empty(0, np.int32)
        order = np.lexsort((all_items, all_keys))
        all_keys, all_items = all_keys[order], all_items[order]
        keys, counts = np.unique(all_keys, return_counts=True)

        lengths_list = sorted(lengths)

        common = counts > max_item_frequency
        in_background = np.zeros(len(keys), dtype=bool)
        background = list(background)
        vocab_array = pa.array(list(vocab), pa.large_string())
        for start in range(0, len(background), 1024):
            ids, starts, _ = _word_ids(background[start:start + 1024], vocab_array)
            in_background[_match(ids, starts, keys, lengths_list)[2]] = True
        keep = ~common & ~in_background
        keep_pairs = np.repeat(keep, counts)
        all_items = all_items[keep_pairs]
        keys, counts = keys[keep], counts[keep]

        item_grams = np.bincount(all_items, minlength=len(items)).astype(np.int64)
        stats = IndexStats(
            items=len(items),
            grams=int(len(keys)),
            ignored_common=int(common.sum()),
            ignored_background=int((in_background & ~common).sum()),
            undetectable_items=int((item_grams == 0).sum()),
            confirmed_items=sum(1 for i in confirm if item_grams[i]),
        )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(n, items, vocab, lengths_list, keys, offsets, all_items, item_grams, stats, confirm)

    def scan(self, texts: Sequence[str], min_coverage: float = 0.0) -> list[list[Hit]]:
        """The benchmark items found in each text, best coverage first."""
        ids, starts, counts = _word_ids(list(texts), self.vocab_array)
        per_doc: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for doc, pos, key, length in zip(*_match(ids, starts, self.keys, self.lengths)):
            per_doc[int(doc)].append((int(pos), int(length), int(key)))
        out: list[list[Hit]] = [[] for _ in texts]
        for doc, found in per_doc.items():
            ws, char_spans = words_with_offsets(texts[doc])
            if len(ws) != counts[doc]:  # the vectorised and the Python rule disagree: trust Python
                python_ids = np.array([self.vocab.get(w, 0) for w in ws] + [0], dtype=np.uint64)
                _, pos, key, length = _match(python_ids, np.zeros(1, np.int64), self.keys, self.lengths)
                found = list(zip(pos.tolist(), length.tolist(), key.tolist()))
            out[doc] = self._hits(ws, char_spans, found, min_coverage)
        return out

    def _hits(self, ws: list[str], char_spans: list[tuple[int, int]], found: list[tuple[int, int, int]],
              min_coverage: float) -> list[Hit]:
        keys_of: dict[int, set[int]] = defaultdict(set)
        windows_of: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for pos, length, key in found:
            for item in self.postings[self.offsets[key]:self.offsets[key + 1]]:
                keys_of[int(item)].add(key)
                windows_of[int(item)].append((pos, pos + length))
        hits = []
        for item, keys in keys_of.items():
            coverage = len(keys) / self.item_grams[item]
            if coverage < min_coverage or (item in self.confirm and not _choices_near(ws, windows_of[item], self.confirm[item])):
                continue
            spans = tuple((char_spans[a][0], char_spans[b - 1][1]) for a, b in _merge(windows_of[item]))
            hits.append(Hit(self.items[item], len(keys), float(coverage), spans))
        hits.sort(key=lambda h: (-h.coverage, h.item.benchmark, h.item.item_id))
        return hits


def _word_ids(texts: list[str], vocab_array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word ids of all texts in one array, a 0 after each text so no gram spans two; each text's start and word count."""
    try:
        flat, counts = arrow_words(texts)
    except (pa.ArrowException, UnicodeEncodeError):  # e.g. a lone surrogate: Arrow wants valid UTF-8
        tokens = [words(t) for t in texts]
        flat, counts = pa.array([w for ws in tokens for w in ws], pa.large_string()), np.array([len(ws) for ws in tokens], np.int64)
    ids = pc.fill_null(pc.add(pc.index_in(flat, value_set=vocab_array), 1), 0).to_numpy(zero_copy_only=False)
    starts = (np.cumsum(counts + 1) - (counts + 1)).astype(np.int64)
    out = np.zeros(len(ids) + len(texts), dtype=np.uint64)
    out[np.arange(len(ids)) + np.repeat(np.arange(len(texts)), counts)] = ids
    return out, starts, counts


def _match(ids: np.ndarray, starts: np.ndarray, keys: np.ndarray, lengths: list[int]):
    """(text, word position in text, key index, gram length) of every indexed gram in `ids`."""
    zeros = np.concatenate([[0], np.cumsum(ids == 0)])
    found = []
    for length in lengths if len(keys) else ():
        if len(ids) < length:
            continue
        valid = np.flatnonzero(zeros[length:] == zeros[:-length])  # windows without an unknown word
        if not len(valid):
            continue
        h = _window_hashes(ids, length)[valid]
        j = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
        hit = keys[j] == h
        found.append((valid[hit], j[hit], np.full(int(hit.sum()), length, dtype=np.int64)))
    if not found:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    pos, key, length = (np.concatenate(a) for a in zip(*found))
    docs = np.searchsorted(starts, pos, side="right") - 1
    return docs, pos - starts[docs], key, length


def _choices_near(ws: list[str], windows: list[tuple[int, int]], choices: tuple[str, ...]) -> bool:
    """At least two of the choices (all, if fewer) stand within CONFIRM_WINDOW words of a match."""
    need = min(2, len(choices))
    for a, b in windows:
        region = " " + " ".join(ws[max(0, a - CONFIRM_WINDOW):b + CONFIRM_WINDOW]) + " "
        if sum(f" {c} " in region for c in choices) >= need:
            return True
    return False


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching word windows merged into maximal runs."""
    merged: list[list[int]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


_rng = np.random.default_rng(_SEED)
_COEF = _rng.integers(0, 2**63, size=256, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_SALT = _rng.integers(0, 2**63, size=257, dtype=np.uint64)


def _window_hashes(ids: np.ndarray, length: int) -> np.ndarray:
    """64-bit hash of every window of `length` ids: a fixed random linear combination (mod 2**64)."""
    if length > len(_COEF):
        raise ValueError(f"n-grams longer than {len(_COEF)} words are not supported")
    count = len(ids) - length + 1
    h = np.full(count, _SALT[length], dtype=np.uint64)
    for k in range(length):
        h += _COEF[k] * ids[k:k + count]
    return h
