"""ROUGE-L F between instructions, and an index that finds near-copies in a large pool fast.

Self-Instruct keeps a proposed instruction only if its ROUGE-L F against every pooled instruction
is at most 0.7. The reference code loops `rouge_score` over the whole pool for each proposal, which
is quadratic in the pool and takes seconds per proposal at tens of thousands of instructions.

`NoveltyIndex` gives the same answer in about a millisecond:
1. Tokenise every instruction once, exactly like `rouge_score`'s default tokenizer.
2. The LCS of two token sequences is at most their multiset overlap, so
   F = 2 * LCS / (len_a + len_b) <= 2 * overlap / (len_a + len_b). An item can only beat the
   threshold t if it shares at least ceil(t * len_a / (2 - t)) tokens with the query. So it must
   contain one of the query's rarest (len_a - that + 1) tokens (prefix filtering): only those
   tokens' posting lists are read, never the long lists of "the" or "a".
3. The overlap bound is then computed for those candidates only, and the exact LCS (bit-parallel,
   one big-integer step per token) runs only on the few items whose bound beats the threshold.
The result equals `rouge_score`'s ROUGE-L F bit for bit (same tokens, same arithmetic).
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from typing import Sequence

import numpy as np

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"^[a-z0-9]+$")
# Float slack on the pruning bounds only: an item is pruned when even its bound is clearly below
# the threshold; the final decision always uses the exact F.
_EPS = 1e-9


def rouge_tokens(text: str) -> list[str]:
    """`rouge_score`'s default tokenizer (no stemming): lowercase, keep runs of [a-z0-9]."""
    text = _NON_ALNUM.sub(" ", text.lower())
    return [t for t in _SPACES.split(text) if _VALID.match(t)]


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyro).

    Bit i of V is 0 when a[i] is matched by the LCS of a and the prefix of b seen so far;
    each token of b updates all of a's bits at once with integer arithmetic.
    """
    if not a or not b:
        return 0
    masks: dict = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def f_from_lcs(lcs: int, target_len: int, prediction_len: int) -> float:
    """ROUGE-L F with `rouge_score`'s exact arithmetic (symmetric in its two lengths)."""
    if not target_len or not prediction_len:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f(target: str, prediction: str) -> float:
    a, b = rouge_tokens(target), rouge_tokens(prediction)
    return f_from_lcs(lcs_length(a, b), len(a), len(b))


class NoveltyIndex:
    """A growing pool of texts that answers "what is the most ROUGE-L-similar pooled text?"."""

    def __init__(self, texts: Sequence[str] = ()):
        self._vocab: dict[str, int] = {}
        self._seqs: list[list[int]] = []
        self._lens = array("i")
        self._post_ids: list[array] = []
        self._post_cnt: list[array] = []
        for t in texts:
            self.add(t)

    def __len__(self) -> int:
        return len(self._seqs)

    def _ids(self, tokens: list[str], grow: bool) -> list[int]:
        out = []
        for tok in tokens:
            i = self._vocab.get(tok)
            if i is None:
                if not grow:
                    i = -1 - len(out)  # unseen token: matches nothing in the pool, unique per position
                else:
                    i = self._vocab[tok] = len(self._post_ids)
                    self._post_ids.append(array("i"))
                    self._post_cnt.append(array("i"))
            out.append(i)
        return out

    def add(self, text: str) -> int:
        """Add a text to the pool; returns its index."""
        ids = self._ids(rouge_tokens(text), grow=True)
        item = len(self._seqs)
        self._seqs.append(ids)
        self._lens.append(len(ids))
        for tok, cnt in Counter(ids).items():
            self._post_ids[tok].append(item)
            self._post_cnt[tok].append(cnt)
        return item

    def best_match(self, text: str, floor: float = 0.7) -> tuple[float, int | None]:
        """(F, index) of the most similar pooled text if its F exceeds `floor`, else (0.0, None).

        Only items that could beat `floor` are ever scored exactly, so the cost depends on how many
        near-copies exist, not on the pool size.
        """
        query = self._ids(rouge_tokens(text), grow=False)
        lq = len(query)
        if not lq or not self._seqs:
            return 0.0, None
        counts = Counter(query)
        known = [(tok, c) for tok, c in counts.items() if tok >= 0]
        if not known:
            return 0.0, None

        # Any item with F > floor shares at least `need` tokens with the query, so it holds one of
        # the query's rarest (lq - need + 1) token occurrences. Unseen tokens are the rarest of all.
        need = max(1, math.ceil(floor * lq / (2 - floor) - _EPS)) if floor > 0 else 1
        budget = lq - need + 1 - sum(c for tok, c in counts.items() if tok < 0)
        if budget <= 0:
            return 0.0, None
        known.sort(key=lambda tc: len(self._post_ids[tc[0]]))
        prefix = []
        for tok, c in known:
            prefix.append(tok)
            budget -= c
            if budget <= 0:
                break
        cand = np.unique(np.concatenate([np.frombuffer(self._post_ids[t], dtype=np.int32) for t in prefix]))

        # Length bound: LCS <= min(lq, lp), so F <= 2 * min(lq, lp) / (lq + lp).
        lens = np.frombuffer(self._lens, dtype=np.int32)[cand]
        cand = cand[2 * np.minimum(lens, lq) > (floor - _EPS) * (lq + lens)]
        if not len(cand):
            return 0.0, None

        # Overlap bound, for the candidates only: postings are sorted by item, so binary search.
        overlap = np.zeros(len(cand), dtype=np.int64)
        for tok, c in known:
            ids = np.frombuffer(self._post_ids[tok], dtype=np.int32)
            pos = np.searchsorted(ids, cand)
            pos_ok = np.minimum(pos, len(ids) - 1)
            hit = ids[pos_ok] == cand
            cnt = np.frombuffer(self._post_cnt[tok], dtype=np.int32)[pos_ok]
            overlap += np.where(hit, np.minimum(cnt, c), 0)
            del ids, cnt
        lens = np.frombuffer(self._lens, dtype=np.int32)[cand]
        bound = 2 * overlap / (lq + lens)
        keep = bound > floor - _EPS
        cand, bound = cand[keep], bound[keep]

        best_f, best_i = 0.0, None
        order = np.argsort(-bound, kind="stable")
        for i, b in zip(cand[order].tolist(), bound[order].tolist()):
            if b < best_f - _EPS:
                break  # bounds are sorted: nothing left can beat the best found
            seq = self._seqs[i]
            f = f_from_lcs(lcs_length(query, seq), lq, len(seq))
            if f > floor and f > best_f:
                best_f, best_i = f, i
        return best_f, best_i

    def is_novel(self, text: str, threshold: float = 0.7) -> bool:
        """True when no pooled text has ROUGE-L F above `threshold` (Self-Instruct's rule)."""
        return self.best_match(text, threshold)[1] is None
