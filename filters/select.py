"""Selection of the best and most diverse rows (Deita, LIMA): which N rows of a data set to train on.

Two rules, both greedy over unit-length embeddings, so a row's fate is explained by two numbers: its
score and its cosine to the nearest row chosen before it.

- `score_first` (Deita's "score-first, diversity-aware" selection): rows in descending score; a row
  is chosen unless a row chosen before it is at or above `max_cosine`, until the budget is spent.
  High-scoring near-copies are skipped in favour of the next different row.
- `k_center` (greedy farthest-first traversal, the k-center 2-approximation): start from the best
  row, then repeatedly choose the row farthest from everything chosen, each distance weighted by the
  row's score share when scores are given, so coverage of the embedding space comes first.

No Ray here: the `select` stage gathers (id, score, vector) of the live rows and calls these.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np

Method = Literal["score_first", "k_center"]
CHUNK = 256  # candidates compared with the chosen rows in one matrix product

CHOSEN, TOO_SIMILAR, OVER_BUDGET = 0, 1, 2
REASONS = {TOO_SIMILAR: "select_too_similar", OVER_BUDGET: "select_over_budget"}


@dataclasses.dataclass
class Selection:
    """Per row, in input order: its place in score order (0 = best), the outcome (CHOSEN, TOO_SIMILAR
    or OVER_BUDGET), and the chosen row nearest to it when it was decided (-1 and NaN: none yet)."""

    rank: np.ndarray
    outcome: np.ndarray
    nearest: np.ndarray
    nearest_cosine: np.ndarray

    @property
    def chosen(self) -> np.ndarray:
        return self.outcome == CHOSEN


def combined_score(columns: Sequence[np.ndarray], n: int) -> np.ndarray:
    """The product of the score columns (Deita's complexity x quality); a missing score (NaN) makes
    the row's score missing, and with no column every row scores 1."""
    score = np.ones(n, dtype=np.float64)
    for column in columns:
        score = score * np.asarray(column, dtype=np.float64)
    return score


def score_order(ids: Sequence[str], score: np.ndarray) -> np.ndarray:
    """Row indices from the best score to the worst, missing scores last, the id breaking ties, so the
    order (and the selection) is the same whatever the order of the input."""
    s = np.asarray(score, dtype=np.float64)
    return np.lexsort((np.asarray(ids, dtype=object).astype(str), np.where(np.isnan(s), np.inf, -s)))


def budget_of(n: int, keep: int | None, keep_share: float | None) -> int:
    if keep is not None:
        return min(keep, n)
    if keep_share is not None:
        return min(n, int(round(keep_share * n)))
    return n


def select(vectors: np.ndarray, ids: Sequence[str], score: np.ndarray, budget: int, method: Method = "score_first",
           max_cosine: float = 0.9) -> Selection:  # fmt: skip
    n = len(ids)
    rank = np.empty(n, dtype=np.int64)
    order = score_order(ids, score)
    rank[order] = np.arange(n)
    selection = Selection(rank, np.full(n, OVER_BUDGET, np.int8), np.full(n, -1, np.int64), np.full(n, np.nan, np.float32))
    if n == 0 or budget <= 0:
        return selection
    vectors = np.asarray(vectors, dtype=np.float32)
    if method == "score_first":
        _score_first(vectors, order, budget, max_cosine, selection)
    else:
        _k_center(vectors, order, score, budget, selection)
    return selection


def _score_first(vectors: np.ndarray, order: np.ndarray, budget: int, max_cosine: float, out: Selection) -> None:
    """Walk the rows in score order a chunk at a time: one product gives every candidate's best cosine
    to the rows chosen in earlier chunks, a second the cosines inside the chunk, and only the
    decision itself is a Python step per row."""
    chosen = np.empty(budget, dtype=np.int64)
    count = 0
    for start in range(0, len(order), CHUNK):
        if count == budget:
            break
        chunk = order[start:start + CHUNK]
        block = vectors[chunk]
        if count:
            earlier = block @ vectors[chosen[:count]].T
            best_earlier, where_earlier = earlier.max(axis=1), chosen[:count][earlier.argmax(axis=1)]
        else:
            best_earlier, where_earlier = np.full(len(chunk), -np.inf, np.float32), np.full(len(chunk), -1)
        inside = block @ block.T
        picked: list[int] = []  # positions in the chunk chosen so far
        for a, row in enumerate(chunk.tolist()):
            if count == budget:
                break
            best, near = best_earlier[a], where_earlier[a]
            if picked:
                b = int(np.argmax(inside[a, picked]))
                if inside[a, picked[b]] > best:
                    best, near = inside[a, picked[b]], chunk[picked[b]]
            if near >= 0:
                out.nearest[row], out.nearest_cosine[row] = near, best
            if best >= max_cosine:
                out.outcome[row] = TOO_SIMILAR
                continue
            out.outcome[row] = CHOSEN
            chosen[count] = row
            count += 1
            picked.append(a)


def _k_center(vectors: np.ndarray, order: np.ndarray, score: np.ndarray, budget: int, out: Selection) -> None:
    """Farthest-first: keep each row's highest cosine to the chosen set, and choose the row with the
    largest (1 - that cosine) x its weight (score / best score; 1 without scores, 0 when missing)."""
    s = np.asarray(score, dtype=np.float64)
    top = np.nanmax(s) if np.isfinite(s).any() else np.nan
    weight = np.nan_to_num(s / top, nan=0.0) if np.isfinite(top) and top > 0 else np.ones(len(s))
    nearest_cos = np.full(len(s), -np.inf, dtype=np.float32)
    nearest = np.full(len(s), -1, dtype=np.int64)
    available = np.ones(len(s), dtype=bool)
    row = int(order[0])
    for _ in range(budget):
        out.outcome[row] = CHOSEN
        if nearest[row] >= 0:
            out.nearest[row], out.nearest_cosine[row] = nearest[row], nearest_cos[row]
        available[row] = False
        cos = vectors @ vectors[row]
        closer = cos > nearest_cos
        nearest_cos[closer], nearest[closer] = cos[closer], row
        if not available.any():
            break
        gain = np.where(available, (1.0 - nearest_cos) * weight, -np.inf)
        # ties (equal gain) go to the better-ranked row: argmax of gain, then of -rank
        best = np.flatnonzero(gain == gain.max())
        row = int(best[np.argmin(out.rank[best])])
    left = available & (out.outcome != CHOSEN)
    out.nearest[left], out.nearest_cosine[left] = nearest[left], nearest_cos[left]
