"""The reweight stage through the engine: each way of giving a target, the cap, determinism, lineage."""

import csv
import json
from collections import Counter

import pytest
import ray.data

from pipeline.config import build_stage
from pipeline.execute import run_stage as execute
from pipeline.records import DROP_REASON, stable_id

# A skewed natural mix of real AG News descriptions: rows per class
SKEW = {"World": 600, "Sports": 300, "Business": 150, "Sci/Tech": 75}


@pytest.fixture(scope="module")
def news_rows(shared_data):
    folder = shared_data / "classification" / "ag_news"
    classes = folder.joinpath("classes.txt").read_text().split()
    left = dict(SKEW)
    rows = []
    with open(folder / "train80.csv", newline="", encoding="utf-8") as f:
        for cls, title, description in csv.reader(f):
            label = classes[int(cls) - 1]
            if left.get(label, 0) > 0:
                left[label] -= 1
                rows.append({"id": stable_id(title, description), "text": description, "domain_label": label, "source": "ag_news"})
    return rows


def reweight(tmp_path, config, rows, seed=0, index=1):
    """(output rows, summary) of one reweight run through the engine's path."""
    stage = build_stage("reweight", config, index=index, output_dir=tmp_path, seed=seed)
    stage.prepare()
    out = execute(stage, ray.data.from_items(rows, override_num_blocks=4)).materialize()
    return out.take_all(), stage.summarize(out)


def token_shares(rows):
    tokens = Counter()
    for r in rows:
        if r.get(DROP_REASON) is None:
            tokens[r["domain_label"]] += len(r["text"].split())
    total = sum(tokens.values())
    return {g: t / total for g, t in tokens.items()}


@pytest.mark.parametrize(
    "config",
    [
        {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 1}, "max_copies": 10},
        {"multipliers": {"Sci/Tech": 3.0, "World": 0.5}},
        {"temperature": 3.0},
        {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 1}, "budget": "no_repeats"},
    ],
    ids=["proportions", "multipliers", "temperature", "no_repeats"],
)
def test_realised_token_shares_follow_the_target(ray_session, tmp_path, news_rows, config):
    out, summary = reweight(tmp_path, config, news_rows)
    realised = token_shares(out)
    groups = summary["groups"]
    assert set(groups) == set(SKEW)
    assert summary["capped"] == []
    for g, v in groups.items():
        assert v["realised_share"] == pytest.approx(realised[g], abs=0.002)  # Arrow and str.split differ on rare whitespace
        assert v["realised_share"] == pytest.approx(v["target_share"], abs=0.04)
        assert v["planned_share"] == pytest.approx(v["target_share"])
    # the target moved the mix: the smallest class gained share, the largest lost it
    assert groups["Sci/Tech"]["realised_share"] > groups["Sci/Tech"]["natural_share"]
    assert groups["World"]["realised_share"] < groups["World"]["natural_share"]
    kinds = [p["kind"] for p in summary["plots"]]
    assert kinds == ["bar", "bar"] and [s["label"] for s in summary["plots"][0]["series"]] == ["natural", "target", "realised"]


def test_every_input_row_is_accounted_for_and_copies_keep_their_origin(ray_session, tmp_path, news_rows):
    config = {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 1}, "max_copies": 10}
    out, summary = reweight(tmp_path, config, news_rows)
    kept = [r for r in out if r[DROP_REASON] is None]
    dropped = [r for r in out if r[DROP_REASON] is not None]
    assert {r[DROP_REASON] for r in dropped} == {"downsampled"}
    originals = [r for r in kept if r["copy_index"] == 0] + dropped
    assert sorted(r["id"] for r in originals) == sorted(r["id"] for r in news_rows)
    assert len({r["id"] for r in kept}) == len(kept)
    by_id = {r["id"]: r for r in news_rows}
    copies = [r for r in kept if r["copy_index"] > 0]
    assert copies and all(r["id"] != r["origin_id"] and r["text"] == by_id[r["origin_id"]]["text"] for r in copies)
    assert sum(v["copies_added"] for v in summary["groups"].values()) == len(copies)
    assert sum(v["downsampled"] for v in summary["groups"].values()) == len(dropped)


def test_the_cap_wins_over_the_target_and_the_summary_says_so(ray_session, tmp_path, news_rows):
    config = {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 1}, "max_copies": 2}
    out, summary = reweight(tmp_path, config, news_rows)
    assert "Sci/Tech" in summary["capped"] and "Sci/Tech" in summary["note"]
    per_origin = Counter(r["origin_id"] for r in out if r[DROP_REASON] is None)
    assert max(per_origin.values()) == 2
    sci = summary["groups"]["Sci/Tech"]
    assert sci["capped"] and sci["realised_share"] < sci["target_share"] - 0.05
    assert sci["rows_out"] == 2 * sci["rows_in"]
    # the others share the budget the cap left: realised follows the cap-adjusted plan, not the target
    assert all(v["realised_share"] == pytest.approx(v["planned_share"], abs=0.04) for v in summary["groups"].values())
    assert summary["groups"]["World"]["planned_share"] > summary["groups"]["World"]["target_share"]


def test_same_seed_same_output_other_seed_other_output(ray_session, tmp_path, news_rows):
    config = {"weights": {"World": 1, "Sports": 2, "Business": 1, "Sci/Tech": 1}}
    ids = [sorted((r["id"], r[DROP_REASON] or "") for r in reweight(tmp_path, config, news_rows, seed=s)[0]) for s in (5, 5, 6)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_by_source_mixes_inputs_by_token_proportions(ray_session, tmp_path, news_rows):
    rows = [dict(r, source="web" if r["domain_label"] == "World" else "curated") for r in news_rows]
    out, summary = reweight(tmp_path, {"by": "source", "weights": {"curated": 4, "web": 1}}, rows)
    assert summary["groups"]["curated"]["realised_share"] == pytest.approx(0.8, abs=0.03)
    assert summary["groups"]["web"]["realised_share"] == pytest.approx(0.2, abs=0.03)


def test_unlisted_groups_are_dropped_and_missing_ones_reported(ray_session, tmp_path, news_rows):
    out, summary = reweight(tmp_path, {"weights": {"World": 1, "Sports": 1, "Poetry": 3}}, news_rows)
    assert summary["missing"] == ["Poetry"]
    assert {r["domain_label"] for r in out if r[DROP_REASON] is None} == {"World", "Sports"}


def test_rows_dropped_before_pass_through_untouched(ray_session, tmp_path, news_rows):
    rows = [dict(r, **{DROP_REASON: "too_short" if i % 10 == 0 else None}) for i, r in enumerate(news_rows)]
    out, _ = reweight(tmp_path, {"temperature": 2.0}, rows)
    assert Counter(r[DROP_REASON] for r in out)["too_short"] == len(rows[::10])


def test_a_group_no_row_has_is_a_user_error(ray_session, tmp_path, news_rows):
    from pipeline.errors import UserError

    rows = [dict(r, meta=json.dumps({"topic": "news"})) for r in news_rows[:10]]
    with pytest.raises(UserError, match=r"no row has 'topc', as a column or a field of the input \(columns: .*meta"):
        reweight(tmp_path, {"by": "topc", "temperature": 2.0}, rows)


def test_by_a_field_of_the_input_reads_it_from_meta(ray_session, tmp_path, news_rows):
    """A JSONL file's own field (`topic`) has no column: the reader keeps it in `meta`, and `by` finds it there."""
    rows = [dict(r, meta=json.dumps({"topic": r["domain_label"]})) for r in news_rows]
    rows[0]["meta"] = "{}"  # a row without the field is in the group `unlabelled`
    out, summary = reweight(tmp_path, {"by": "topic", "weights": {"World": 1, "Sports": 1}, "default_weight": 0}, rows)
    assert summary["groups"]["World"]["realised_share"] == pytest.approx(0.5, abs=0.03)
    assert {json.loads(r["meta"])["topic"] for r in out if r[DROP_REASON] is None} == {"World", "Sports"}
    assert summary["groups"]["unlabelled"]["rows_in"] == 1


@pytest.mark.parametrize("config", [{}, {"weights": {"a": 1}, "temperature": 2.0}, {"temperature": 0},
                                    {"max_copies": 0, "temperature": 1}, {"budget": 0, "temperature": 1}, {"budget": "all", "temperature": 1}])
def test_bad_configs_are_refused(config, tmp_path):
    from pipeline.config import _StageConfigError

    with pytest.raises(_StageConfigError):
        build_stage("reweight", config, index=1, output_dir=tmp_path)


@pytest.mark.slow
def test_shares_are_counted_with_the_run_tokenizer_when_one_is_set(ray_session, tmp_path, news_rows):
    from transformers import AutoTokenizer

    from tiny_models.llama import build_tiny_tokenizer

    rows = news_rows[:400]
    # trained on one class only: the other classes' words split into more pieces than whitespace says
    build_tiny_tokenizer([r["text"] for r in rows if r["domain_label"] == "World"], vocab_size=400).save_pretrained(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    counts = Counter()
    for r in rows:
        counts[r["domain_label"]] += len(tok(r["text"], add_special_tokens=False)["input_ids"])
    stage = build_stage("reweight", {"temperature": 1.0}, index=1, output_dir=tmp_path, tokenizer=str(tmp_path / "tok"))
    out = execute(stage, ray.data.from_items(rows, override_num_blocks=2)).materialize()
    summary = stage.summarize(out)
    assert {g: v["tokens_in"] for g, v in summary["groups"].items()} == dict(counts)
    words = Counter()
    for r in rows:
        words[r["domain_label"]] += len(r["text"].split())
    assert dict(counts) != dict(words)


def test_chained_reweights_keep_ids_distinct_and_origin_first(ray_session, tmp_path, news_rows):
    config = {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 1}, "max_copies": 10}
    first, _ = reweight(tmp_path, config, news_rows)
    live = [{k: v for k, v in r.items() if not k.startswith("_")} for r in first if r[DROP_REASON] is None]
    second, _ = reweight(tmp_path, {"weights": {"World": 1, "Sports": 1, "Business": 1, "Sci/Tech": 3}, "max_copies": 10},
                         live, index=2)
    kept = [r for r in second if r[DROP_REASON] is None]
    assert len({r["id"] for r in kept}) == len(kept)
    originals = {r["id"] for r in news_rows}
    assert {r["origin_id"] for r in kept} <= originals
    assert any(r["id"].count("~") == 4 for r in kept)  # a copy of a copy
