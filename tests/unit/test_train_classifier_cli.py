"""`pipeline train-classifier` on real news text: both input modes, the saved model, the report, user errors."""

import csv
import json

import pytest

from filters import fasttext_train as ft
from filters.fasttext_classifier import FastTextClassifier
from pipeline.cli import main


@pytest.fixture(scope="module")
def news_csv(shared_data):
    return shared_data / "classification" / "ag_news" / "train80.csv"


def test_positives_and_negatives_give_a_binary_report(news_csv, tmp_path, capsys):
    with open(news_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    pos, neg = tmp_path / "sci.jsonl", tmp_path / "sports.txt"
    pos.write_text("".join(json.dumps({"text": f"{t} {d}"}) + "\n" for c, t, d in rows if c == "4"))
    neg.write_text("".join(f"{t} {d}".replace("\n", " ") + "\n" for c, t, d in rows if c == "2"))
    model = tmp_path / "m" / "quality.bin"

    code = main(["train-classifier", "--positives", str(pos), "--negatives", str(neg), "-o", str(model), "--bucket", "100000",
                 "--loss", "softmax"])

    assert code == 0
    metrics = json.loads((tmp_path / "m" / "quality.bin.metrics.json").read_text())
    assert metrics["params"]["loss"] == "softmax" and FastTextClassifier(model).model.f.getArgs().loss.name == "softmax"
    assert metrics["labels"] == ["cc", "hq"] and metrics["positive"] == "hq"
    assert metrics["auc"] > 0.9 and metrics["precision"] > 0.8 and metrics["recall"] > 0.8
    assert "AUC" in capsys.readouterr().out
    assert sorted(FastTextClassifier(model).labels) == ["cc", "hq"]


def test_labelled_csv_gives_a_multiclass_model(news_csv, tmp_path):
    model = tmp_path / "topics.bin"
    code = main([
        "train-classifier", "--data", str(news_csv), "--fieldnames", "label,title,description",
        "--text-field", "title,description", "-o", str(model), "--bucket", "100000", "--test-fraction", "0.2",
    ])
    assert code == 0
    metrics = json.loads(model.with_name("topics.bin.metrics.json").read_text())
    assert metrics["labels"] == ["1", "2", "3", "4"]
    assert metrics["accuracy"] > 0.7  # chance is 0.25
    assert all(stats["recall"] > 0.5 for stats in metrics["per_label"].values())
    assert "auc" not in metrics
    args = FastTextClassifier(model).model.f.getArgs()  # the defaults reach the saved model (fastText does not save lr)
    assert (args.loss.name, args.epoch, args.wordNgrams, args.dim) == ("ova", 20, 2, 100)
    assert args.bucket == 100_000 and metrics["params"] == {**ft.TRAIN_DEFAULTS, "bucket": 100_000}


def test_defaults_are_the_measured_ones():
    """docs/curation.md measured these on ten seeded 80/20 splits of AG News (one-vs-all beat softmax on
    each); a change to them needs a new measurement there."""
    assert ft.TRAIN_DEFAULTS == {
        "lr": 0.5, "epoch": 20, "wordNgrams": 2, "dim": 100, "minCount": 1, "bucket": 200_000, "loss": "ova",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--data", "missing.csv"],
        ["--positives", "a.txt"],
        [],
    ],
)
def test_user_errors_exit_2(tmp_path, argv, capsys):
    assert main(["train-classifier", *argv, "-o", str(tmp_path / "m.bin")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_diverging_training_is_one_line_exit_2(news_csv, tmp_path, capsys):
    code = main(["train-classifier", "--data", str(news_csv), "--fieldnames", "label,title,description",
                 "--text-field", "title,description", "-o", str(tmp_path / "m.bin"), "--lr", "100", "--epoch", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "diverged" in err and "--lr" in err
    assert not (tmp_path / "m.bin").exists()


def test_a_single_label_is_a_user_error(tmp_path):
    data = tmp_path / "one.jsonl"
    data.write_text("".join(json.dumps({"label": "a", "text": f"text {i}"}) + "\n" for i in range(20)))
    assert main(["train-classifier", "--data", str(data), "-o", str(tmp_path / "m.bin")]) == 2


def test_rows_without_a_label_are_left_out_not_a_class(tmp_path, capsys):
    """A null label used to train a class called "None"."""
    data = tmp_path / "some.jsonl"
    labels = ["sports", "science", None, ""] * 10
    data.write_text("".join(json.dumps({"label": lab, "text": f"text {i} about {lab}"}) + "\n" for i, lab in enumerate(labels)))
    assert main(["train-classifier", "--data", str(data), "-o", str(tmp_path / "m.bin")]) == 0
    metrics = json.loads((tmp_path / "m.bin.metrics.json").read_text())
    assert metrics["labels"] == ["science", "sports"] and metrics["unlabelled_rows"] == 20
    assert metrics["n_train"] + metrics["n_test"] == 20
    assert "left out 20 rows with no 'label'" in capsys.readouterr().out


def test_object_storage_problems_exit_2_with_one_line_before_training(tmp_path, s3_bucket, monkeypatch, capsys):
    from pipeline import storage
    from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET

    data = storage.locate(f"{s3_bucket}/in/labelled.jsonl")
    data.write_text("".join(json.dumps({"label": "ab"[i % 2], "text": f"text {i}"}) + "\n" for i in range(20)))

    def error(*argv) -> str:
        assert main(["train-classifier", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    assert "file not found: s3://no-such-bucket-h8/in.jsonl" in error("--data", "s3://no-such-bucket-h8/in.jsonl",
                                                                      "-o", str(tmp_path / "m.bin"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READ_ONLY_KEY)  # may read the data, may not write the model
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READ_ONLY_SECRET)
    err = error("--data", data.uri, "-o", f"{s3_bucket}/models/m.bin")
    assert f"--output: cannot write {s3_bucket}/models/m.bin" in err and "denied" in err.lower()


def test_a_default_learning_rate_that_diverges_is_halved_until_training_converges(monkeypatch):
    """fastText now and then diverges at the default lr (a fresh clone's domain-stage fixture did);
    a user who did not choose lr gets a model, trained at the rate that converged."""
    import filters.fasttext_train as ft

    examples = [ft.Example(label, text) for label, text in [("a", "the cat sat on the mat"), ("b", "stocks fell sharply"),
                                                          ("a", "a dog ran in the park"), ("b", "markets rallied")]] * 20
    monkeypatch.setitem(ft.TRAIN_DEFAULTS, "lr", 50.0)  # diverges at once on this set
    model = ft.train(examples, threads=1)
    assert ft.MIN_LR <= model.lr < 50.0
    with pytest.raises(RuntimeError, match="NaN"):  # a rate the user chose is theirs: no silent change
        ft.train(examples, threads=1, lr=50.0)


def test_a_divergence_is_retried_at_the_same_rate_then_on_one_thread(monkeypatch):
    """Racing threads diverge now and then where the rerun does not (CI's test process twice in a row):
    halving at once cost a fresh clone's AG News model 13 points of accuracy. The rate is the same on
    each retry, the seed the next, and the last retry runs on one thread, where no update races another."""
    import fasttext

    import filters.fasttext_train as ft

    real, calls = fasttext.train_supervised, []

    def diverges_on_several_threads(**kwargs):
        calls.append((kwargs["lr"], kwargs["seed"], kwargs["thread"]))
        if kwargs["thread"] > 1:
            raise RuntimeError("Encountered NaN.")
        return real(**kwargs)

    monkeypatch.setattr(fasttext, "train_supervised", diverges_on_several_threads)
    examples = [ft.Example("a", "the cat sat on the mat"), ft.Example("b", "stocks fell sharply")] * 20
    model = ft.train(examples, seed=7, threads=2, epoch=2)
    assert calls == [(0.5, 7, 2), (0.5, 8, 2), (0.5, 9, 1)] and model.lr == 0.5
