"""The quality stage through the engine with a classifier trained here on real news text."""

import csv

import pytest

from filters import fasttext_train as ft
from pipeline.errors import UserError
from pipeline.records import DROP_REASON, stable_id


@pytest.fixture(scope="module")
def news(shared_data):
    """Sci/Tech news as the 'hq' class, sports as 'cc'; a model trained on 80%, rows from the rest."""
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        pairs = [ft.Example("hq" if c == "4" else "cc", f"{t}. {d}") for c, t, d in csv.reader(f) if c in ("2", "4")]
    train, test = ft.split(pairs, 0.2, seed=0)
    return train, test[:120]


@pytest.fixture(scope="module")
def model_path(news, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "quality.bin"
    ft.train(news[0], seed=0, bucket=200_000).save_model(str(path))
    return str(path)


def rows(examples):
    return [{"id": stable_id(e.text), "text": e.text, "url": None, "domain": None, "source": e.label, "meta": "{}"} for e in examples]


def test_min_score_keeps_the_positive_class(run_stage, news, model_path):
    test = rows(news[1])
    kept, dropped = run_stage("quality", {"model": model_path, "min_score": 0.5}, test)
    assert len(kept) + len(dropped) == len(test)
    assert all(r["quality"] >= 0.5 for r in kept)
    assert all(r[DROP_REASON] == "quality_below_min_score" and r["quality"] < 0.5 for r in dropped)
    assert sum(r["source"] == "hq" for r in kept) > 0.8 * len(kept)


def test_top_fraction_keeps_that_share_of_the_best(run_stage, news, model_path):
    test = rows(news[1])
    kept, dropped = run_stage("quality", {"model": model_path, "top_fraction": 0.25}, test)
    assert len(kept) + len(dropped) == len(test)
    assert len(kept) >= 0.25 * len(test)
    assert min(r["quality"] for r in kept) >= max(r["quality"] for r in dropped)
    assert {r[DROP_REASON] for r in dropped} == {"quality_below_top_fraction"}


def test_rows_dropped_earlier_pass_through_untouched(run_stage, news, model_path):
    test = rows(news[1][:20])
    for r in test[:5]:
        r[DROP_REASON] = "earlier_rule"
    kept, dropped = run_stage("quality", {"model": model_path, "top_fraction": 0.5}, test)
    assert len(kept) + len(dropped) == 20
    assert sum(r[DROP_REASON] == "earlier_rule" for r in dropped) == 5
    assert len(kept) >= 7


def test_missing_model_and_unknown_label_are_user_errors(run_stage, model_path, tmp_path):
    with pytest.raises(UserError, match="not found"):
        run_stage("quality", {"model": str(tmp_path / "nope.bin")}, [])
    with pytest.raises(UserError, match="label 'good'"):
        run_stage("quality", {"model": model_path, "label": "good"}, [])


def test_the_report_shows_how_the_model_did_on_its_held_out_rows(model_path, tmp_path):
    """train-classifier writes its held-out measures beside the model; the run that applies the model
    reports them (after annotate-then-classify: the agreement with the annotator). A model trained
    elsewhere has none, and the report says nothing of it."""
    import json
    import shutil

    from pipeline.config import build_stage

    def summary(model):
        return build_stage("quality", {"model": str(model), "min_score": 0.5}, index=1, output_dir=tmp_path).summarize(None)

    assert summary(model_path) == {"threshold": 0.5, "mode": "min_score"}
    trained = shutil.copy(model_path, tmp_path / "edu.bin")
    measures = {"n_test": 40, "accuracy": 0.9, "agreement": {"spearman": 0.71, "within_one": 0.95}}
    (tmp_path / "edu.bin.metrics.json").write_text(json.dumps({**measures, "labels": ["cc", "hq"], "train_seconds": 0.4}))
    assert summary(trained)["classifier_held_out"] == measures
