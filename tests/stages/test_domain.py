"""The domain stage through the engine: rules, a field, a fastText classifier trained on AG News."""

import csv
import json
import random

import pytest

from pipeline.errors import UserError


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "domains.yaml"
    path.write_text(
        "rules:\n"
        "  - {host: wikipedia.org, label: encyclopedia}\n"
        "  - {host: python.org, label: programming}\n"
        "  - {host: docs.python.org, label: docs}\n"
        "  - {url_contains: /recipes/, label: food}\n"
    )
    return path


def test_rules_then_field_then_default(run_stage, rules_file):
    rows = [
        {"id": "1", "text": "a", "url": "https://en.wikipedia.org/wiki/Ray", "domain": "en.wikipedia.org", "source": "crawl"},
        {"id": "2", "text": "b", "url": "https://docs.python.org/3/", "domain": "docs.python.org", "source": "crawl"},
        {"id": "3", "text": "c", "url": "https://www.python.org/about", "domain": "www.python.org", "source": "crawl"},
        {"id": "4", "text": "d", "url": "https://example.com/recipes/pie", "domain": "example.com", "source": "crawl"},
        {"id": "5", "text": "e", "url": "https://example.com/x", "domain": "example.com", "source": "forum"},
        {"id": "6", "text": "f", "url": "https://example.com/y", "domain": "example.com", "source": None},
    ]
    kept, dropped = run_stage("domain", {"rules": str(rules_file), "field": "source", "default": "misc"}, rows)
    assert not dropped
    got = {r["id"]: (r["domain_label"], r["domain_score"]) for r in kept}
    assert got == {
        "1": ("encyclopedia", 1.0),
        "2": ("docs", 1.0),
        "3": ("programming", 1.0),
        "4": ("food", 1.0),
        "5": ("forum", 1.0),
        "6": ("misc", 0.0),
    }
    assert {r["id"]: r["domain"] for r in kept} == {r["id"]: r["domain"] for r in rows}


def test_a_field_of_the_input_labels_from_meta(run_stage):
    """A JSONL file's `category` has no column (the reader keeps it in `meta`); every row was labelled
    the default before."""
    rows = [{"id": str(i), "text": "t", "meta": json.dumps({"category": c} if c else {})}
            for i, c in enumerate(["sports", "news", None])]
    kept, _ = run_stage("domain", {"field": "category"}, rows)
    assert {r["id"]: (r["domain_label"], r["domain_score"]) for r in kept} == {
        "0": ("sports", 1.0), "1": ("news", 1.0), "2": ("other", 0.0)}


def test_summary_counts_live_rows_per_label(ray_session, tmp_path, rules_file):
    import ray.data

    from pipeline.config import build_stage
    from pipeline.records import DROP_REASON

    stage = build_stage("domain", {"rules": str(rules_file)}, index=1, output_dir=tmp_path)
    rows = [{"domain_label": lab, "domain_score": sc, DROP_REASON: reason}
            for lab, sc, reason in [("docs", 1.0, None), ("docs", 1.0, None), ("other", 0.0, None), ("docs", 1.0, "too_short")]]
    summary = stage.summarize(ray.data.from_items(rows, override_num_blocks=2))
    assert summary["labels"] == {"docs": {"rows": 2, "mean_score": 1.0}, "other": {"rows": 1, "mean_score": 0.0}}
    assert summary["plots"][0]["x"] == ["docs", "other"] and summary["plots"][0]["y"] == [2, 1]


@pytest.fixture(scope="module")
def ag_news_split(shared_data, tmp_path_factory):
    """(labelled training JSONL, held-out rows with their gold class) from the shared AG News."""
    folder = shared_data / "classification" / "ag_news"
    classes = folder.joinpath("classes.txt").read_text().split()
    with open(folder / "train80.csv", newline="", encoding="utf-8") as f:
        rows = [{"label": classes[int(c) - 1], "title": t, "text": d} for c, t, d in csv.reader(f)]
    random.Random(0).shuffle(rows)
    train, held_out = rows[:4800], rows[4800:]
    path = tmp_path_factory.mktemp("ag_news") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    return path, held_out


@pytest.fixture(scope="module")
def ag_news_model(ag_news_split, tmp_path_factory):
    """A topic model trained the way a user trains one: `pipeline train-classifier` on labelled JSONL."""
    from pipeline.cli import main

    path, _ = ag_news_split
    out = tmp_path_factory.mktemp("model") / "ag_news.bin"
    code = main(["train-classifier", "--data", str(path), "--label-field", "label", "--text-field", "text",
                 "--output", str(out), "--threads", "2", "--epoch", "10", "--dim", "32"])
    assert code == 0 and out.is_file()
    return out


@pytest.mark.slow
def test_classifier_labels_held_out_news_far_above_chance(run_stage, ag_news_model, ag_news_split):
    _, held_out = ag_news_split
    rows = [{"id": str(i), "text": r["text"], "url": None, "domain": None} for i, r in enumerate(held_out)]
    kept, dropped = run_stage("domain", {"model": str(ag_news_model)}, rows)
    assert not dropped and len(kept) == len(rows)
    gold = {str(i): r["label"] for i, r in enumerate(held_out)}
    accuracy = sum(r["domain_label"] == gold[r["id"]] for r in kept) / len(kept)
    assert accuracy > 0.75  # four balanced classes: chance is 0.25
    assert all(0.0 < r["domain_score"] <= 1.0 for r in kept)  # one-vs-all scores each label alone: the top one may be < 1/4


@pytest.mark.slow
def test_low_confidence_predictions_fall_back_to_the_default(run_stage, ag_news_model, ag_news_split):
    _, held_out = ag_news_split
    rows = [{"id": str(i), "text": r["text"]} for i, r in enumerate(held_out[:300])] + [{"id": "empty", "text": "  "}]
    kept, _ = run_stage("domain", {"model": str(ag_news_model), "min_score": 0.9, "default": "unsure"}, rows)
    unsure = [r for r in kept if r["domain_label"] == "unsure"]
    assert 0 < len(unsure) < len(kept)
    assert "empty" in {r["id"] for r in unsure}
    assert all(r["domain_score"] == 0.0 for r in unsure)
    assert all(r["domain_score"] >= 0.9 for r in kept if r["domain_label"] != "unsure")


def test_missing_files_and_bad_rules_are_user_errors(tmp_path):
    from pipeline.config import build_stage

    bad = tmp_path / "bad.yaml"
    bad.write_text("- {host: a.org}\n")
    for config, needle in [({"model": str(tmp_path / "none.bin")}, "model file not found"), ({"rules": str(bad)}, "label")]:
        with pytest.raises(UserError, match=needle):
            build_stage("domain", config, index=1, output_dir=tmp_path).prepare()
