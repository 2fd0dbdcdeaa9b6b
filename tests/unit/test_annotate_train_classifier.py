"""`pipeline train-classifier --score-field`: learning an annotator's scores (AG News labels stand in for
them), from a JSONL file or an annotate run's output folder, with the agreement on held-out rows."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters import fasttext_train as ft
from filters.fasttext_classifier import FastTextClassifier
from pipeline.cli import main
from tests.cli import cli


@pytest.fixture(scope="module")
def news(shared_data) -> list[tuple[int, str]]:
    with open(shared_data / "classification/ag_news/train80.csv", newline="", encoding="utf-8") as f:
        return [(int(c), f"{t} {d}") for c, t, d in csv.reader(f)]


def test_ordinal_agreement_rules():
    gold, pred = np.array([0.0, 1, 2, 3, 5]), np.array([0.0, 2, 2, 5, 5])
    a = ft.ordinal_agreement(gold, pred)
    assert a["within_1"] == 0.8 and a["mean_abs_error"] == pytest.approx(0.6)
    assert a["spearman"] == pytest.approx(0.9486833) and a["pearson"] == pytest.approx(15.2 / (14.8 * 18.8) ** 0.5)
    flat = ft.ordinal_agreement(gold, np.full(5, 2.0))  # a classifier that always says 2: no correlation to speak of
    assert flat["spearman"] is None and flat["pearson"] is None and flat["within_1"] == 0.6


def test_scores_in_jsonl_give_a_score_model_with_its_agreement(news, tmp_path, capsys):
    data = tmp_path / "scored.jsonl"
    with data.open("w") as f:
        for i, (label, text) in enumerate(news):
            f.write(json.dumps({"text": text, "annotation_score": None if i % 10 == 0 else float(label)}) + "\n")
    model = tmp_path / "scores.bin"

    assert main(["train-classifier", "--data", str(data), "--score-field", "annotation_score", "-o", str(model),
                 "--test-fraction", "0.2", "--threads", "1"]) == 0

    metrics = json.loads((tmp_path / "scores.bin.metrics.json").read_text())
    assert metrics["labels"] == ["1", "2", "3", "4"] and metrics["score_field"] == "annotation_score"
    assert metrics["unscored_rows"] == len(range(0, len(news), 10))
    assert metrics["n_train"] + metrics["n_test"] == len(news) - metrics["unscored_rows"]
    assert metrics["accuracy"] > 0.8 and metrics["agreement"]["within_1"] > 0.9 and metrics["agreement"]["spearman"] > 0.7
    assert "agreement with the held-out scores: spearman" in capsys.readouterr().out


def test_an_annotate_runs_output_folder_and_min_score_give_a_quality_model(news, tmp_path):
    out = tmp_path / "run"
    (out / "data").mkdir(parents=True)
    half = len(news) // 2
    for k, part in enumerate((news[:half], news[half:])):  # two shards, as a run writes them
        pq.write_table(pa.table({"id": [f"{k}-{i}" for i in range(len(part))], "text": [t for _, t in part],
                                 "annotation_score": pa.array([float(c) for c, _ in part], pa.float32())}),
                       out / "data" / f"part-0000{k}-of-00002.parquet")
    model = tmp_path / "quality.bin"

    assert main(["train-classifier", "--data", str(out), "--score-field", "annotation_score", "--min-score", "3",
                 "-o", str(model), "--threads", "1"]) == 0

    metrics = json.loads((tmp_path / "quality.bin.metrics.json").read_text())
    assert metrics["labels"] == ["cc", "hq"] and metrics["positive"] == "hq" and "agreement" not in metrics
    assert metrics["n_train"] + metrics["n_test"] == len(news) and metrics["auc"] > 0.9
    classifier = FastTextClassifier(str(model))
    assert sorted(classifier.labels) == ["cc", "hq"]


@pytest.mark.parametrize("args, message", [
    (["--min-score", "3"], "error: --min-score goes with --score-field"),
    (["--score-field", "edu"], "error: {data}: no field 'edu' (fields: text, annotation_score)"),
])  # fmt: skip
def test_score_mistakes_are_one_line_and_exit_2(args, message, tmp_path):
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "annotation_score": i % 3}) + "\n" for i in range(20)))
    proc = cli("train-classifier", "--data", data, *args, "-o", tmp_path / "m.bin")
    assert proc.returncode == 2 and proc.stderr.strip() == message.format(data=data)
