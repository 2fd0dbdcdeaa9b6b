"""Scoring text with a fastText classifier: DCLM's quality filter, and topic/domain labels.

DCLM showed a bigram fastText model telling reference-quality text from random web text is the
strongest single quality filter for pretraining data, at a cost of microseconds per document.
`score` gives the probability of one label; `top_fraction_threshold` turns a score histogram
into the cut that keeps a given share of documents, so "keep the best 10%" needs no sort.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filters.fasttext_model import load, prepare_text, strip_label

HISTOGRAM_BINS = 10_000


class FastTextClassifier:
    def __init__(self, model_path: str | Path):
        self.model = load(model_path)
        self.labels = [strip_label(lab) for lab in self.model.get_labels()]

    def predict(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """The best label of each text and its probability."""
        labels, probs = self.model.predict([prepare_text(t) for t in texts], k=1)
        return [strip_label(lab[0]) for lab in labels], [min(1.0, float(p[0])) for p in probs]

    def score(self, texts: list[str], label: str) -> list[float]:
        """The probability of `label` for each text (0 when the model ranks it below the rest)."""
        labels, probs = self.model.predict([prepare_text(t) for t in texts], k=-1)
        target = f"__label__{label}"
        out = []
        for labs, ps in zip(labels, probs):
            hit = [float(p) for lab, p in zip(labs, ps) if lab == target]
            out.append(min(1.0, hit[0]) if hit else 0.0)
        return out


def score_histogram(scores: list[float] | np.ndarray) -> np.ndarray:
    """Counts of scores in HISTOGRAM_BINS equal bins over [0, 1]: summable across batches."""
    return np.histogram(np.clip(scores, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]


def top_fraction_threshold(histogram: np.ndarray, fraction: float) -> float:
    """The highest bin edge t such that keeping scores >= t keeps at least `fraction` of all rows.

    Resolution is 1/HISTOGRAM_BINS: rows tied within one bin are kept or dropped together, so
    the kept share can exceed `fraction` by at most the count of one bin.
    """
    total = int(histogram.sum())
    if total == 0 or fraction >= 1.0:
        return 0.0
    kept_from = np.cumsum(histogram[::-1])[::-1]
    enough = np.nonzero(kept_from >= fraction * total)[0]
    return float(enough[-1]) / HISTOGRAM_BINS
