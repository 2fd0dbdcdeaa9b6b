"""Fit filters/boilerplate_lines.json: the `auto` engine's model of boilerplate lines at the edges of resiliparse's text.

The lines are those of resiliparse's text (with `auto`'s skip selectors) of the 990 pages of the shared
extraction set; a line holding one of a page's `without` snippets is boilerplate, one holding a `with`
snippet is not, the rest are unlabelled. Logistic regression on standardised `feature_matrix`, with
balanced classes (a fifth of the labelled lines are boilerplate). The regularisation and the threshold
are chosen by five-fold cross-validation over pages on the set's own measure (snippet F1 of the trimmed
text), so the figure printed for the choice is one the model did not see; scikit-learn is needed here
only (the semantic extra installs it), not where the weights are used.

    python scripts/train_boilerplate_lines.py [--out filters/boilerplate_lines.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_extract import load_pages, quality  # noqa: E402

from filters.boilerplate_lines import FEATURES, WEIGHTS, LineModel, content_lines, feature_matrix, trim_boilerplate  # noqa: E402
from filters.extract_auto import SKIP_SELECTORS  # noqa: E402
from filters.html_extract import MAX_HTML_BYTES, extract_resiliparse, triage  # noqa: E402

STRENGTHS = (0.01, 0.1, 1.0, 10.0)  # scikit-learn's C: inverse regularisation
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
FOLDS = 5


def fast_texts(pages) -> list[str]:
    texts = []
    for url, raw, _, _ in pages:
        html, _ = triage(raw, None, MAX_HTML_BYTES)
        texts.append(extract_resiliparse(html, url, skip_elements=SKIP_SELECTORS)[0] if html else "")
    return texts


def labelled_lines(pages, texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, 1 for boilerplate, the page's index) of every line a snippet labels."""
    rows, labels, page_of = [], [], []
    for index, ((_, _, with_, without), text) in enumerate(zip(pages, texts)):
        lines, _ = content_lines(text.split("\n"))
        if not lines:
            continue
        for features, line in zip(feature_matrix(lines), lines):
            boilerplate, content = any(s in line for s in without), any(s in line for s in with_)
            if boilerplate != content:
                rows.append(features)
                labels.append(int(boilerplate))
                page_of.append(index)
    return np.array(rows), np.array(labels), np.array(page_of)


def fit(features: np.ndarray, labels: np.ndarray, strength: float, threshold: float = 0.5) -> LineModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000).fit((features - mean) / scale, labels)
    return LineModel(mean, scale, model.coef_[0], float(model.intercept_[0]), threshold)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    pages = load_pages()
    texts = fast_texts(pages)
    features, labels, page_of = labelled_lines(pages, texts)
    fold = np.arange(len(pages)) % FOLDS
    print(f"{len(labels)} labelled lines of {len(pages)} pages, {labels.mean():.1%} boilerplate")
    print("untrimmed text: snippet F1", round(quality(pages, texts)["f1"], 4))
    scores = {}
    for strength in STRENGTHS:
        trimmed = {t: list(texts) for t in THRESHOLDS}
        for f in range(FOLDS):
            train = fold[page_of] != f
            m = fit(features[train], labels[train], strength)
            for threshold in THRESHOLDS:
                model = LineModel(m.mean, m.scale, m.coef, m.intercept, threshold)
                for index in np.flatnonzero(fold == f):
                    trimmed[threshold][index] = trim_boilerplate(texts[index], model)
        for threshold in THRESHOLDS:
            scores[strength, threshold] = quality(pages, trimmed[threshold])["f1"]
            print(f"C={strength} threshold={threshold}: cross-validated snippet F1 {scores[strength, threshold]:.4f}")
    strength, threshold = max(scores, key=scores.get)
    model = fit(features, labels, strength, threshold)
    args.out.write_text(json.dumps({
        "fitted_by": "scripts/train_boilerplate_lines.py",
        "data": "shared/data/extraction/trafilatura_eval (990 pages), lines labelled by their gold snippets",
        "strength": strength, "cross_validated_f1": round(scores[strength, threshold], 4),
        "features": list(FEATURES), "mean": model.mean.tolist(), "scale": model.scale.tolist(),
        "coef": model.coef.tolist(), "intercept": model.intercept, "threshold": threshold,
    }, indent=1) + "\n")
    print(f"chose C={strength}, threshold {threshold} (cross-validated F1 {scores[strength, threshold]:.4f}); wrote {args.out}")


if __name__ == "__main__":
    main()
