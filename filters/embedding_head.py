"""A regression head on sentence embeddings: FineWeb-Edu's classifier, the second half of annotate-then-classify.

FineWeb-Edu learns the LLM's 0-5 ratings with a linear head on a frozen embedding model; where a
bigram fastText model sees words, the embeddings see meaning, which is what a rubric like
"educational value" asks about. The head is a ridge regression (scikit-learn's `RidgeCV`, which picks
its regularisation by efficient leave-one-out on the training rows), saved as a small JSON file that
names its embedding model, so the `quality` stage loads it like a fastText model. The stage's score is
the prediction mapped onto [0, 1] by the rubric's scale, so `min_score` and `top_fraction` mean what
they mean for a fastText model's probability.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

KIND = "embedding_regression"
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclasses.dataclass
class Head:
    embedding_model: str
    weights: np.ndarray
    bias: float
    scale: tuple[float, float]  # the lowest and highest score of the rubric
    alpha: float

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The rubric score of each row of unit vectors (unclipped)."""
        return vectors @ self.weights + self.bias

    def quality(self, vectors: np.ndarray) -> np.ndarray:
        """The predicted score on [0, 1]: 0 at the bottom of the scale, 1 at its top."""
        lo, hi = self.scale
        return np.clip((self.predict(vectors) - lo) / (hi - lo), 0.0, 1.0)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({
            "kind": KIND, "embedding_model": self.embedding_model, "scale": list(self.scale), "alpha": self.alpha,
            "bias": self.bias, "weights": self.weights.astype(float).tolist(),
        }) + "\n")


def is_head(path: str | Path) -> bool:
    """A head file is JSON; a fastText model is binary. Decided by the name, so no model is opened twice."""
    return str(path).endswith(".json")


def load(path: str | Path) -> Head:
    """A saved head; a file that is not one is a ValueError saying what it is missing."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a JSON regression head ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError(f"not a regression head (no \"kind\": \"{KIND}\")")
    return Head(data["embedding_model"], np.asarray(data["weights"], dtype=np.float32), float(data["bias"]),
                tuple(data["scale"]), float(data["alpha"]))


def fit(embedding_model: str, vectors: np.ndarray, scores: Sequence[float], scale: tuple[float, float] | None = None) -> Head:
    """Ridge regression of the scores on the vectors; the scale defaults to the scores' own range."""
    from sklearn.linear_model import RidgeCV

    y = np.asarray(scores, dtype=np.float64)
    model = RidgeCV(alphas=ALPHAS).fit(vectors, y)
    lo, hi = scale if scale is not None else (float(y.min()), float(y.max()))
    if hi <= lo:
        raise ValueError(f"every score is {lo}: nothing to learn")
    return Head(embedding_model, model.coef_.astype(np.float32), float(model.intercept_), (lo, hi), float(model.alpha_))
