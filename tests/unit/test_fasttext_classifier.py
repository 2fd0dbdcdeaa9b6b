"""fastText classifiers: training on real labelled news, held-out metrics, scoring, the top-fraction cut."""

import csv
import itertools
import random

import numpy as np
import pytest

from filters import fasttext_train as ft
from filters.fasttext_classifier import HISTOGRAM_BINS, FastTextClassifier, score_histogram, top_fraction_threshold
from filters.fasttext_model import prepare_text


@pytest.fixture(scope="module")
def ag_news(shared_data):
    folder = shared_data / "classification" / "ag_news"
    classes = folder.joinpath("classes.txt").read_text().split()
    with open(folder / "train80.csv", newline="", encoding="utf-8") as f:
        return [ft.Example(classes[int(c) - 1].replace("/", "_"), f"{t} {d}") for c, t, d in csv.reader(f)]


def test_binary_model_reports_precision_recall_auc(ag_news, tmp_path):
    pairs = [ft.Example("hq" if ex.label == "Sci_Tech" else "cc", ex.text) for ex in ag_news if ex.label in ("Sci_Tech", "Sports")]
    train, test = ft.split(pairs, 0.2, seed=1)
    model = ft.train(train, seed=0, bucket=200_000)
    report = ft.evaluate(model, test, len(train), positive="hq")
    assert report.positive == "hq"
    assert report.auc > 0.9 and report.precision > 0.8 and report.recall > 0.8

    path = tmp_path / "quality.bin"
    model.save_model(str(path))
    classifier = FastTextClassifier(path)
    sci = [ex.text for ex in test if ex.label == "hq"][:50]
    sports = [ex.text for ex in test if ex.label == "cc"][:50]
    assert np.mean(classifier.score(sci, "hq")) > np.mean(classifier.score(sports, "hq")) + 0.5
    assert classifier.score(sci, "no_such_label") == [0.0] * len(sci)


def test_split_is_seeded_and_disjoint():
    examples = [ft.Example("a", str(i)) for i in range(100)]
    train, test = ft.split(examples, 0.2, seed=3)
    assert len(test) == 20 and len(train) == 80
    assert {e.text for e in train}.isdisjoint({e.text for e in test})
    assert [e.text for e in test] == [e.text for e in ft.split(examples, 0.2, seed=3)[1]]


def test_auc_matches_pairwise_definition():
    rng = random.Random(0)
    scores = np.array([round(rng.random(), 1) for _ in range(60)])  # rounded: many ties
    positive = np.array([rng.random() < 0.4 for _ in range(60)])
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, n in itertools.product(scores[positive], scores[~positive])
    ]
    assert ft.auc(scores, positive) == pytest.approx(sum(pairs) / len(pairs))


def test_top_fraction_cut_keeps_the_best_share():
    scores = np.linspace(0, 1, 1000, endpoint=False)
    threshold = top_fraction_threshold(score_histogram(scores), 0.1)
    assert (scores >= threshold).sum() == 100
    threshold = top_fraction_threshold(score_histogram(scores[:500]) + score_histogram(scores[500:]), 0.25)
    assert (scores >= threshold).sum() == 250


def test_top_fraction_with_ties_keeps_at_least_the_share():
    scores = np.array([0.9] * 30 + [0.2] * 70)
    threshold = top_fraction_threshold(score_histogram(scores), 0.1)
    assert (scores >= threshold).sum() == 30
    assert top_fraction_threshold(score_histogram(scores), 1.0) == 0.0
    assert top_fraction_threshold(np.zeros(HISTOGRAM_BINS, dtype=int), 0.5) == 0.0


def test_prepare_text_is_one_lowercase_line_with_punctuation_split():
    assert prepare_text("Hello, World!\nNew  line.") == "hello , world ! new line ."
