"""An index of benchmark n-grams and the scanner that finds them in training text.

Every word of the benchmarks gets an integer id (a number word up to twenty shares its digits' id); a
batch of texts is normalised and mapped to ids by Arrow kernels (words no benchmark uses map to 0, and
a window holding a 0 cannot match). An n-gram is hashed to 64 bits as a random linear combination of
its word ids, so a whole batch of texts is hashed with a handful of numpy operations; a bitmap of the
keys' top bits passes a few percent of the windows to one `searchsorted` against the sorted keys.
Only rows that hit go back to Python, to turn word positions into character spans.

Grams are formed inside each part of an item (question, choice, answer...). A part of at least `n`
words gives its `n`-grams. A shorter part is indexed whole, as one shorter gram, if it has at least
`min_words` words when it is the item's first part (the question or prompt: sentences written for
the benchmark) or `min_words_answer` words otherwise (choices and short answers are phrases that
ordinary text uses too: "the Immigration and Nationality Act of 1965"). Anything shorter is not
indexed on its own. A multiple-choice item is also indexed whole, as harnesses print it, so that a
fragment across question and options, or a one-word question with its options, is found. A
multiple-choice item left with nothing indexed ("What are histones?" with one-word choices) has its
question indexed whole from `CONFIRM_MIN_WORDS` words, and counts as found only where at least two of
its choices stand within `CONFIRM_WINDOW` words of it. One of these grams finds its item.

Every indexed text also gives its short grams (`SHORT_GRAM_RATIO` of n words), of which it takes
`SHORT_GRAMS_NEEDED` distinct ones to find an item: nine words of it in a row, or two runs of eight,
survive a changed number, a moved word boundary or a reworded clause that breaks every n-gram, while
one everyday 8-word phrase is not enough. Windows that are mostly numbers are not indexed. An item
with no gram at all is reported as undetectable.
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
SHORT_GRAM_RATIO = 0.6  # short grams have round(0.6 * n) words: 8 for n = 13
SHORT_GRAMS_NEEDED = 2  # distinct short grams of one item that count as finding it
PREFILTER_BITS = 26  # an 8 MiB bitmap in front of the binary search
LABELS = "abcdefghij"  # option labels as normalised: "A.", "(A)" and "A)" are all "a"
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()


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
        self.vocab_array, self.word_ids = _vocab_arrays(vocab)
        self.short_postings = np.zeros(len(postings), bool)  # which postings are short grams (see build)
        self.maybe = _prefilter(keys)
        self.item_short_grams = np.zeros(len(items), np.int64)

    @classmethod
    def build(cls, items: Sequence[BenchmarkItem], n: int = 13, min_words: int = 6, min_words_answer: int = 8,
              max_item_frequency: int = 10, background: Iterable[str] = ()) -> "NgramIndex":
        if not (1 <= min_words <= n and 1 <= min_words_answer <= n):
            raise ValueError(f"min_words and min_words_answer must be between 1 and n ({n})")
        items = list(items)
        short_n = round(SHORT_GRAM_RATIO * n) if round(SHORT_GRAM_RATIO * n) < n else 0
        vocab, part_ids = _benchmark_words([p for item in items for p in item.parts])
        labels = [vocab.setdefault(w, len(vocab) + 1) for w in LABELS]
        numeric = np.zeros(len(vocab) + 1, dtype=bool)  # by word id
        numeric[[i for w, i in vocab.items() if w.isdigit() or w in NUMBER_WORDS]] = True
        texts: list[np.ndarray] = []
        text_item: list[int] = []
        confirm: dict[int, tuple[str, ...]] = {}
        at = 0
        for i, item in enumerate(items):
            parts, at = part_ids[at:at + len(item.parts)], at + len(item.parts)
            indexed = [ids for k, ids in enumerate(parts) if len(ids) >= (min_words if k == 0 else min_words_answer)]
            if not indexed and len(parts) >= 3 and len(parts[0]) >= CONFIRM_MIN_WORDS:
                indexed = [parts[0]]
                confirm[i] = tuple(" ".join(ws) for ws in map(words, item.parts[1:]) if ws)
            if len(parts) >= 3 and i not in confirm:
                indexed += _renderings(parts, labels, min_words)
            texts += indexed
            text_item += [i] * len(indexed)
        all_keys, all_items, all_short, lengths = _grams(texts, np.array(text_item, np.int32), numeric, n, short_n)
        order = np.lexsort((all_short, all_items, all_keys))  # a strong gram of an item before a short one
        all_keys, all_items, all_short = all_keys[order], all_items[order], all_short[order]
        first = np.ones(len(all_keys), bool)
        first[1:] = (all_keys[1:] != all_keys[:-1]) | (all_items[1:] != all_items[:-1])
        all_keys, all_items, all_short = all_keys[first], all_items[first], all_short[first]
        keys, counts = np.unique(all_keys, return_counts=True)

        lengths_list = sorted(lengths)

        common = counts > max_item_frequency
        in_background = np.zeros(len(keys), dtype=bool)
        background = list(background)
        vocab_array, word_ids = _vocab_arrays(vocab)
        for start in range(0, len(background), 1024):
            ids, starts, _ = _word_ids(background[start:start + 1024], vocab_array, word_ids)
            in_background[_match(ids, starts, keys, lengths_list)[2]] = True
        keep = ~common & ~in_background
        keep_pairs = np.repeat(keep, counts)
        all_items, all_short = all_items[keep_pairs], all_short[keep_pairs]
        keys, counts = keys[keep], counts[keep]

        item_grams = np.bincount(all_items[~all_short], minlength=len(items)).astype(np.int64)
        item_short_grams = np.bincount(all_items[all_short], minlength=len(items)).astype(np.int64)
        stats = IndexStats(
            items=len(items),
            grams=int(len(keys)),
            ignored_common=int(common.sum()),
            ignored_background=int((in_background & ~common).sum()),
            undetectable_items=int(((item_grams == 0) & (item_short_grams < SHORT_GRAMS_NEEDED)).sum()),
            confirmed_items=sum(1 for i in confirm if item_grams[i]),
        )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32 if len(all_items) < 2**31 else np.int64)
        index = cls(n, items, vocab, lengths_list, keys, offsets, all_items, item_grams, stats, confirm)
        index.short_postings, index.item_short_grams = all_short, item_short_grams
        return index

    def scan(self, texts: Sequence[str], min_coverage: float = 0.0) -> list[list[Hit]]:
        """The benchmark items found in each text, best coverage first."""
        ids, starts, counts = _word_ids(list(texts), self.vocab_array, self.word_ids)
        per_doc: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for doc, pos, key, length in zip(*_match(ids, starts, self.keys, self.lengths, self.maybe)):
            per_doc[int(doc)].append((int(pos), int(length), int(key)))
        out: list[list[Hit]] = [[] for _ in texts]
        for doc, found in per_doc.items():
            ws, char_spans = words_with_offsets(texts[doc])
            if len(ws) != counts[doc]:  # the vectorised and the Python rule disagree: trust Python
                python_ids = np.array([self.vocab.get(w, 0) for w in ws] + [0], dtype=np.uint64)
                _, pos, key, length = _match(python_ids, np.zeros(1, np.int64), self.keys, self.lengths, self.maybe)
                found = list(zip(pos.tolist(), length.tolist(), key.tolist()))
            out[doc] = self._hits(ws, char_spans, found, min_coverage)
        return out

    def _hits(self, ws: list[str], char_spans: list[tuple[int, int]], found: list[tuple[int, int, int]],
              min_coverage: float) -> list[Hit]:
        keys_of: dict[int, set[int]] = defaultdict(set)
        short_of: dict[int, set[int]] = defaultdict(set)
        windows_of: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for pos, length, key in found:
            at = slice(self.offsets[key], self.offsets[key + 1])
            for item, short in zip(self.postings[at].tolist(), self.short_postings[at].tolist()):
                (short_of if short else keys_of)[item].add(key)
                windows_of[item].append((pos, pos + length))
        hits = []
        for item in keys_of.keys() | short_of.keys():
            if item in keys_of:
                matched, coverage = len(keys_of[item]), len(keys_of[item]) / self.item_grams[item]
            elif len(short_of[item]) >= SHORT_GRAMS_NEEDED:
                matched, coverage = len(short_of[item]), len(short_of[item]) / self.item_short_grams[item]
            else:
                continue
            if coverage < min_coverage or (item in self.confirm and not _choices_near(ws, windows_of[item], self.confirm[item])):
                continue
            spans = tuple((char_spans[a][0], char_spans[b - 1][1]) for a, b in _merge(windows_of[item]))
            hits.append(Hit(self.items[item], matched, float(coverage), spans))
        hits.sort(key=lambda h: (-h.coverage, h.item.benchmark, h.item.item_id))
        return hits


def _renderings(parts: list[np.ndarray], labels: list[int], min_words: int) -> list[np.ndarray]:
    """A multiple-choice item whole, as harnesses print it: options labelled (`A.`, `(A)`, `A)` all normalise
    to `a`) and not. Its grams across question and options find fragments and, for a short question, the
    question only with its options; a rendering of under `min_words` words is not indexed."""
    plain = np.concatenate(parts)
    if len(plain) < min_words:
        return []
    labelled = [parts[0]] + [np.concatenate([[label], ids]).astype(np.uint64) for label, ids in zip(labels, parts[1:])]
    return [np.concatenate(labelled), plain]


def _benchmark_words(texts: list[str]) -> tuple[dict[str, int], list[np.ndarray]]:
    """The vocabulary of the benchmark texts (number words and their digits share an id) and each text's word ids."""
    flat, counts = _words_of(texts)
    vocab: dict[str, int] = {str(k): k + 1 for k in range(len(NUMBER_WORDS))}
    vocab.update({w: k + 1 for k, w in enumerate(NUMBER_WORDS)})  # "three" and "3" are one word
    for w in pc.unique(flat).to_pylist():
        vocab.setdefault(w, len(vocab) + 1)
    vocab_array, word_ids = _vocab_arrays(vocab)
    ids = word_ids[pc.index_in(flat, value_set=vocab_array).to_numpy(zero_copy_only=False)]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return vocab, [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _grams(texts: list[np.ndarray], text_item: np.ndarray, numeric: np.ndarray, n: int, short_n: int):
    """Every gram of every indexed text in one pass per gram length: a text of at least n words gives its
    n-grams, a shorter one itself whole (strong grams); a text of at least short_n words also gives its
    short_n-grams (short grams). Windows that are mostly numbers are left out. Returns keys, items,
    whether each is short, and the gram lengths used."""
    sizes = np.array([len(t) for t in texts], dtype=np.int64)
    ids = np.zeros(int(sizes.sum()) + len(texts), dtype=np.uint64)
    starts = np.cumsum(sizes + 1) - (sizes + 1)
    if len(texts):
        ids[np.arange(int(sizes.sum())) + np.repeat(np.arange(len(texts)), sizes)] = np.concatenate(texts)
    count = np.concatenate([[0], np.cumsum(numeric[ids.astype(np.int64)])])
    strong_len = np.minimum(sizes, n)
    wanted = [(length, strong_len == length, False) for length in np.unique(strong_len[sizes > 0]).tolist()]
    if short_n:
        wanted.append((short_n, sizes >= short_n, True))
    keys, owners, short = [], [], []
    for length, which, is_short in wanted:
        if not which.any():
            continue
        windows = sizes[which] - length + 1
        at = np.repeat(starts[which], windows) + np.arange(int(windows.sum())) - np.repeat(np.cumsum(windows) - windows, windows)
        at = at[(length - (count[at + length] - count[at])) * 4 >= length]  # a quarter of words not numbers
        keys.append(_window_hashes(ids, length)[at])
        owners.append(text_item[np.searchsorted(starts, at, side="right") - 1])
        short.append(np.full(len(at), is_short))
    if not keys:
        return np.empty(0, np.uint64), np.empty(0, np.int32), np.empty(0, bool), set()
    return np.concatenate(keys), np.concatenate(owners), np.concatenate(short), {w[0] for w in wanted if w[1].any()}


def _words_of(texts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """`arrow_words`, or the Python rule for text Arrow cannot take (a lone surrogate: Arrow wants UTF-8)."""
    try:
        return arrow_words(texts)
    except (pa.ArrowException, UnicodeEncodeError):
        tokens = [words(t) for t in texts]
        return pa.array([w for ws in tokens for w in ws], pa.large_string()), np.array([len(ws) for ws in tokens], np.int64)


def _vocab_arrays(vocab: dict[str, int]) -> tuple[pa.Array, np.ndarray]:
    """The vocabulary as Arrow strings and, at the same positions, the word ids (a number word and its digits
    share one id), with a 0 at the end for words not in it."""
    return pa.array(list(vocab), pa.large_string()), np.array([*vocab.values(), 0], dtype=np.uint64)


def _word_ids(texts: list[str], vocab_array: pa.Array, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word ids of all texts in one array, a 0 after each text so no gram spans two; each text's start and word count."""
    flat, counts = _words_of(texts)
    at = pc.fill_null(pc.index_in(flat, value_set=vocab_array), -1).to_numpy(zero_copy_only=False)
    ids = word_ids[at]  # -1: the 0 at the end
    starts = (np.cumsum(counts + 1) - (counts + 1)).astype(np.int64)
    out = np.zeros(len(ids) + len(texts), dtype=np.uint64)
    out[np.arange(len(ids)) + np.repeat(np.arange(len(texts)), counts)] = ids
    return out, starts, counts


def _match(ids: np.ndarray, starts: np.ndarray, keys: np.ndarray, lengths: list[int], maybe: np.ndarray | None = None):
    """(text, word position in text, key index, gram length) of every indexed gram in `ids`. With `maybe`
    (`_prefilter(keys)`), only windows whose hash has its bit set are looked up."""
    zeros = np.concatenate([[0], np.cumsum(ids == 0)])
    found = []
    for length in lengths if len(keys) else ():
        if len(ids) < length:
            continue
        valid = np.flatnonzero(zeros[length:] == zeros[:-length])  # windows without an unknown word
        if not len(valid):
            continue
        h = _window_hashes(ids, length)[valid]
        if maybe is not None:
            top = h >> np.uint64(64 - PREFILTER_BITS)
            candidate = ((maybe[top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)
            valid, h = valid[candidate], h[candidate]
        j = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
        hit = keys[j] == h
        found.append((valid[hit], j[hit], np.full(int(hit.sum()), length, dtype=np.int64)))
    if not found:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    pos, key, length = (np.concatenate(a) for a in zip(*found))
    docs = np.searchsorted(starts, pos, side="right") - 1
    return docs, pos - starts[docs], key, length


def _prefilter(keys: np.ndarray) -> np.ndarray:
    """A bitmap of the keys' top PREFILTER_BITS bits: with millions of keys, a lookup in it costs a fraction of
    a binary search, and only a few percent of the windows of ordinary text get past it."""
    bits = np.zeros(1 << PREFILTER_BITS, dtype=bool)
    bits[keys >> np.uint64(64 - PREFILTER_BITS)] = True
    return np.packbits(bits, bitorder="little")


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
