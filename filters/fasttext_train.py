"""Training a fastText classifier from labelled text, and measuring it on held-out data.

Used for DCLM-style quality models (positives = reference-quality text, negatives = random web
text) and for multi-class topic/domain models. Word bigrams (wordNgrams=2) as in DCLM and
fastText's own text-classification paper: they carry most of the gain over bag-of-words at
almost no cost. The held-out split is seeded, so the reported figures are reproducible.

Defaults suit the labelled sets this project trains on (thousands to a few million lines):
lr 0.5 and 20 epochs, as fastText recommends for small sets (5 epochs leave AG News at ~50%
accuracy), and 200k hash buckets for bigrams, which keeps a model near 80 MB instead of
fastText's 2M-bucket 800 MB that every worker would load. For DCLM-scale training sets,
raise `bucket` and lower `epoch`. The loss is one-vs-all (independent sigmoids, `ova`), not
softmax: on AG News topics it was better on each of ten seeded 80/20 splits (+0.005 accuracy on
average, at the same training time), where epochs, lr, dim, n-gram length, buckets and fastText's
autotune moved nothing beyond the split-to-split spread (docs/curation.md); with two labels it
scores as softmax does (the same AUC).
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, TextIO

import numpy as np

from filters.fasttext_model import prepare_text

TRAIN_DEFAULTS = {"lr": 0.5, "epoch": 20, "wordNgrams": 2, "dim": 100, "minCount": 1, "bucket": 200_000, "loss": "ova"}


@dataclass
class Example:
    label: str
    text: str
    score: float | None = None  # the number a scored example's label was made from (a regression learns it)


@dataclass
class Report:
    n_train: int
    n_test: int
    labels: list[str]
    accuracy: float
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    positive: str | None = None
    precision: float | None = None
    recall: float | None = None
    auc: float | None = None
    agreement: dict[str, float] | None = None  # with ordinal labels (scores): how close predictions fall

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def clean_label(label: object) -> str:
    """fastText labels cannot contain whitespace."""
    return "_".join(str(label).split())


def read_texts(lines: TextIO, name: str, text_fields: list[str]) -> Iterator[str]:
    """Texts from a plain-text file (one per line), JSONL (`text_fields` joined) or CSV with a header."""
    for row in read_rows(lines, name):
        if isinstance(row, str):
            yield row
        else:
            yield " ".join(str(row.get(f) or "") for f in text_fields)


def read_rows(lines: TextIO, name: str, fieldnames: list[str] | None = None) -> Iterator[dict | str]:
    """Rows of an open text file whose format its `name` gives (.jsonl, .csv, .tsv, else one text per
    line, each maybe .gz): the caller opens it, from local disk or object storage, with universal
    newlines off so that CSV fields keep their own line breaks."""
    name = name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        for line in lines:
            if line.strip():
                yield json.loads(line)
    elif name.endswith((".csv", ".tsv")):
        yield from csv.DictReader(lines, fieldnames=fieldnames, delimiter="\t" if name.endswith(".tsv") else ",")
    else:
        for line in lines:
            if line.strip():
                yield line.rstrip("\r\n")


def examples_from_labelled(
    lines: TextIO, name: str, label_field: str, text_fields: list[str], fieldnames: list[str] | None = None
) -> tuple[list[Example], int]:
    """Examples and how many rows had no label (null or blank): not a class called "None", but rows
    nobody labelled, which are not training data."""
    out, unlabelled = [], 0
    for row in read_rows(lines, name, fieldnames):
        if isinstance(row, str):
            raise ValueError(f"{name}: a labelled file must be CSV or JSONL, not plain text")
        if label_field not in row:
            raise ValueError(f"{name}: no field '{label_field}' (fields: {', '.join(row)})")
        if row[label_field] is None or not str(row[label_field]).strip():
            unlabelled += 1
            continue
        out.append(Example(clean_label(row[label_field]), " ".join(str(row.get(f) or "") for f in text_fields)))
    return out, unlabelled


def examples_from_scores(
    rows, name: str, score_field: str, text_fields: list[str], min_score: float | None = None,
    positive: str = "hq", negative: str = "cc",
) -> tuple[list[Example], int]:
    """Examples labelled by a numeric score (an LLM annotator's, say) and how many rows had none.

    The label is the score rounded to an integer (a multi-class model of the scale), or with
    `min_score` the positive label at or above it and the negative below (a quality model). Rows
    without a score (not annotated, or the annotator's answer had none) are not training data.
    """
    out, unscored = [], 0
    for row in rows:
        if isinstance(row, str):
            raise ValueError(f"{name}: a scored file must be CSV, JSONL or Parquet, not plain text")
        if score_field not in row:
            raise ValueError(f"{name}: no field '{score_field}' (fields: {', '.join(row)})")
        try:
            score = float(row[score_field])
        except (TypeError, ValueError):
            unscored += 1
            continue
        if score != score:  # NaN
            unscored += 1
            continue
        label = str(round(score)) if min_score is None else positive if score >= min_score else negative
        out.append(Example(label, " ".join(str(row.get(f) or "") for f in text_fields), score))
    return out, unscored


def ordinal_agreement(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """How a classifier's scores agree with the annotator's: the FineWeb-Edu figures (rank and linear
    correlation, the share within one point) beside the mean absolute error."""
    from scipy.stats import pearsonr, spearmanr

    diff = np.abs(gold - pred)
    constant = len(set(gold.tolist())) < 2 or len(set(pred.tolist())) < 2  # correlation undefined
    return {
        "spearman": None if constant else float(spearmanr(gold, pred).statistic),
        "pearson": None if constant else float(pearsonr(gold, pred).statistic),
        "within_1": float((diff <= 1).mean()),
        "mean_abs_error": float(diff.mean()),
    }


def examples_from_texts(lines: TextIO, name: str, label: str, text_fields: list[str]) -> list[Example]:
    """Every text of one file with one label: a positives or a negatives file."""
    return [Example(label, t) for t in read_texts(lines, name, text_fields)]


def split(examples: list[Example], test_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then the last `test_fraction` held out."""
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    n_test = max(1, int(round(len(shuffled) * test_fraction)))
    return shuffled[:-n_test], shuffled[-n_test:]


MIN_LR = 0.05  # the default learning rate is halved after repeated divergence down to this, then it is an error


def train(examples: list[Example], seed: int = 0, threads: int | None = None, **params):
    """A fastText supervised model; `params` override TRAIN_DEFAULTS (fastText's own names).

    fastText's threads update the weights without locks, and now and then a run diverges ("Encountered
    NaN") where its rerun does not; in a busy process (CI's test run) it did so twice in a row. Halving
    the rate at once cost accuracy (a fresh clone's AG News model fell from 0.87 to 0.74 at a quarter
    of it), so a diverged run is retried at the same rate with the next seed, then on one thread,
    where no update races another; only a rate that diverges there too is too high. A user who did
    not choose `lr` then gets it halved until training converges (the model's `lr` says which); one
    who chose it gets the error.
    """
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None
    settings = {**TRAIN_DEFAULTS, **params}
    threads = threads or os.cpu_count() or 1
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        for ex in examples:
            f.write(f"__label__{ex.label} {prepare_text(ex.text)}\n")
    try:
        while True:
            for attempt, thread in enumerate((threads, threads, 1)):
                try:
                    return fasttext.train_supervised(input=f.name, seed=seed + attempt, thread=thread, verbose=0, **settings)
                except RuntimeError as e:
                    if "NaN" not in str(e):
                        raise
                    diverged = e
            if "lr" in params or settings["lr"] / 2 < MIN_LR:
                raise diverged
            settings["lr"] /= 2
    finally:
        os.unlink(f.name)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties count half)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(model, test: list[Example], n_train: int, positive: str | None = None, ordinal: bool = False) -> Report:
    """Accuracy and per-label precision/recall; for a binary model also the positive label's AUC; for
    `ordinal` labels (integer scores) the agreement of predicted and true scores."""
    labels = sorted({lab.removeprefix("__label__") for lab in model.get_labels()})
    texts = [prepare_text(ex.text) for ex in test]
    gold = np.array([ex.label for ex in test])
    pred_labels, probs = model.predict(texts, k=-1)
    pred = np.array([labs[0].removeprefix("__label__") for labs in pred_labels])
    per_label = {}
    for lab in labels:
        tp = int(((pred == lab) & (gold == lab)).sum())
        n_pred, n_gold = int((pred == lab).sum()), int((gold == lab).sum())
        per_label[lab] = {
            "precision": tp / n_pred if n_pred else 0.0,
            "recall": tp / n_gold if n_gold else 0.0,
            "support": n_gold,
        }
    report = Report(n_train=n_train, n_test=len(test), labels=labels, accuracy=float((pred == gold).mean()), per_label=per_label)
    if ordinal:
        report.agreement = ordinal_agreement(gold.astype(float), pred.astype(float))
    if len(labels) == 2:
        positive = positive or labels[0]
        target = f"__label__{positive}"
        scores = np.array([next((float(p) for lab, p in zip(labs, ps) if lab == target), 0.0) for labs, ps in zip(pred_labels, probs)])
        report.positive = positive
        report.precision = per_label[positive]["precision"]
        report.recall = per_label[positive]["recall"]
        report.auc = auc(scores, gold == positive)
    return report
