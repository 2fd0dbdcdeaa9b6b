"""The dedup stage through the engine's path, on real AG News text with planted duplicates."""

from __future__ import annotations

import csv
import json
import random

import pytest
import rensa

from filters.dedup.minhash import jaccard
from filters.dedup.shingles import shingles


def _news(shared_data, n: int) -> list[str]:
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        rows = list(csv.reader(f))
    texts = [f"{title}. {desc}" for _, title, desc in rows if len(desc.split()) >= 25]
    return texts[:n]


def _edit(text: str, changes: int, rng: random.Random) -> str:
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = rng.choice(["alpha", "bravo", "charlie", "delta", "echo"])
    return " ".join(words)


def _true_jaccard(x: str, y: str) -> float:
    a, b = shingles([x, y]).unique_sets()
    return jaccard(a, b)


@pytest.fixture
def corpus(shared_data):
    """40 originals; 8 with a light copy (true J >= 0.8), 4 exact copies, 4 heavy edits (J < 0.5)."""
    rng = random.Random(7)
    base = _news(shared_data, 40)
    rows = [{"id": f"doc{i:03d}", "text": t, "source": "ag_news"} for i, t in enumerate(base)]
    planted = []
    for i in range(8):
        copy = _edit(base[i], 1, rng)
        planted.append((f"doc{i:03d}", copy, _true_jaccard(base[i], copy)))
    for i in range(8, 12):
        planted.append((f"doc{i:03d}", base[i], 1.0))
    for i in range(12, 16):
        copy = _edit(base[i], len(base[i].split()) // 3, rng)
        planted.append((f"doc{i:03d}", copy, _true_jaccard(base[i], copy)))
    for k, (orig, text, _) in enumerate(planted):
        rows.append({"id": f"copy{k:03d}", "text": text, "source": "planted"})
    return rows, {f"copy{k:03d}": (orig, j) for k, (orig, _, j) in enumerate(planted)}


@pytest.mark.shared_data
def test_minhash_finds_planted_pairs_deterministically(run_stage, corpus):
    rows, planted = corpus
    config = {"method": "minhash", "partitions": 2}
    kept, dropped = run_stage("dedup", config, rows)
    assert len(kept) + len(dropped) == len(rows)
    dropped_of = {r["id"]: r["dup_of"] for r in dropped}
    for copy, (orig, j) in planted.items():
        if j >= 0.8:
            pair = {copy, orig}
            gone = pair & set(dropped_of)
            assert len(gone) == 1, (copy, orig, j)
            (loser,) = gone
            assert dropped_of[loser] == (pair - gone).pop()
        elif j < 0.5:
            assert copy not in dropped_of and orig not in dropped_of, (copy, j)
    assert all(r["_drop_reason"] == "near_duplicate" for r in dropped)
    sizes = {r["id"]: r["dup_cluster_size"] for r in kept + dropped}
    assert all(sizes[r["id"]] == 2 for r in dropped)
    assert all(r["dup_cluster"] == r["dup_of"] for r in dropped)

    # deterministic: the same rows in another order give the same verdicts, whatever the partitions
    verdict = lambda rs: sorted((r["id"], r["dup_cluster"], r.get("dup_of"), r["dup_cluster_size"]) for r in rs)  # noqa: E731
    for other in ({**config, "partitions": 3}, {**config, "partitions": 1}, {"method": "minhash"}):
        again_kept, again_dropped = run_stage("dedup", other, list(reversed(rows)))
        assert verdict(again_kept) == verdict(kept) and verdict(again_dropped) == verdict(dropped)


@pytest.mark.shared_data
def test_survivor_prefers_quality_then_length(run_stage, shared_data, tmp_path):
    text = _news(shared_data, 1)[0]
    longer = text + " Extra words."
    rows = [
        {"id": "a", "text": text, "quality": 0.2},
        {"id": "b", "text": longer, "quality": 0.9},
        {"id": "c", "text": longer, "quality": None},
        {"id": "d", "text": text, "quality": None},
        {"id": "e", "text": longer + " And more.", "quality": None},
    ]
    import ray.data

    from pipeline.config import build_stage
    from pipeline.execute import run_stage as execute

    stage = build_stage("dedup", {"threshold": 0.7, "survivor": ["quality", "longest"], "partitions": 2}, index=1,
                        output_dir=tmp_path)
    out = execute(stage, ray.data.from_items(rows + [{"id": "z", "text": "Something else entirely, unlike the others.", "quality": None}]))
    marked = out.take_all()
    assert {r["id"]: r["dup_of"] for r in marked} == {"a": "b", "b": None, "c": "b", "d": "b", "e": "b", "z": None}
    assert all(r["dup_cluster_size"] == 5 and r["dup_cluster"] == "b" for r in marked if r["id"] != "z")
    summary = stage.summarize(out)
    assert summary["cluster_sizes"] == {"1": 1, "5": 1} and summary["clusters_with_duplicates"] == 1
    curve, hist = summary["plots"]
    assert curve["kind"] == "line" and curve["y"][-1] == 1.0 and curve["y"][0] == 0.0
    assert hist["kind"] == "bar" and hist["x"] == [1, 5] and hist["y"] == [1, 1]


@pytest.mark.shared_data
def test_the_quality_rule_reads_a_score_the_input_carries(run_stage, shared_data):
    """A JSONL file's own `reward` has no column (the reader keeps it in `meta`); the rule used to skip it
    as absent and keep the longest copy."""
    text = _news(shared_data, 1)[0]
    rows = [{"id": "short", "text": text, "meta": json.dumps({"reward": 0.9})},
            {"id": "long", "text": text + " Extra words.", "meta": json.dumps({"reward": 0.1})}]
    kept, dropped = run_stage("dedup", {"threshold": 0.7, "survivor": ["quality", "longest"], "quality_column": "reward"}, rows)
    assert [r["id"] for r in kept] == ["short"] and [r["dup_of"] for r in dropped] == ["short"]


def _replace(text: str, positions: list[int], word: str) -> str:
    words = text.split()
    for k, p in enumerate(positions):
        words[p] = f"{word}{k}"
    return " ".join(words)


@pytest.mark.shared_data
@pytest.mark.parametrize("verify", [True, False])
def test_a_chained_family_keeps_both_ends(run_stage, shared_data, verify):
    """A~B and B~C at J 0.87, A and C at 0.76: B goes for A; C, below the threshold with A, stays."""
    a = " ".join(_news(shared_data, 3))
    n = len(a.split())
    b = _replace(a, [n // 6, n // 2], "bravo")
    c = _replace(b, [n // 3, 5 * n // 6], "charlie")
    assert _true_jaccard(a, b) >= 0.8 and _true_jaccard(b, c) >= 0.8 and _true_jaccard(a, c) < 0.8
    rows = [{"id": "a", "text": a, "quality": 0.9}, {"id": "b", "text": b, "quality": 0.5},
            {"id": "c", "text": c, "quality": 0.1}] + [{"id": f"n{i}", "text": t} for i, t in enumerate(_news(shared_data, 10)[3:])]
    kept, dropped = run_stage("dedup", {"verify": verify, "partitions": 2}, rows)
    assert {r["id"]: r["dup_of"] for r in dropped} == {"b": "a"}
    clusters = {r["id"]: (r["dup_cluster"], r["dup_cluster_size"]) for r in kept + dropped}
    assert clusters["a"] == clusters["b"] == ("a", 2) and clusters["c"] == ("c", 1)


@pytest.mark.shared_data
def test_exact_method(run_stage, shared_data):
    texts = _news(shared_data, 6)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows.append({"id": "x0", "text": texts[0].upper()})  # same after normalisation, same length: d0 < x0
    rows.append({"id": "x1", "text": texts[1] + " one more"})  # not the same
    kept, dropped = run_stage("dedup", {"method": "exact"}, rows)
    assert {r["id"]: r["dup_of"] for r in dropped} == {"x0": "d0"}
    assert dropped[0]["_drop_reason"] == "exact_duplicate"


@pytest.mark.shared_data
def test_index_round_trip_with_against(run_stage, corpus, tmp_path):
    rows, planted = corpus
    originals = [r for r in rows if r["source"] == "ag_news"]
    copies = [r for r in rows if r["source"] == "planted"]
    index = tmp_path / "first_index"
    run_stage("dedup", {"index_dir": str(index)}, originals)
    assert (index / "params.json").exists()
    kept, dropped = run_stage("dedup", {"against": [str(index)], "index": False}, copies)
    dropped_of = {r["id"]: r["dup_of"] for r in dropped}
    for copy, (orig, j) in planted.items():
        if j >= 0.9:
            assert dropped_of.get(copy) == orig, (copy, j)
        elif j < 0.5:
            assert copy not in dropped_of


def test_against_with_other_parameters_is_a_user_error(tmp_path):
    import json

    from pipeline.config import build_stage
    from pipeline.errors import UserError

    index = tmp_path / "idx"
    index.mkdir()
    first = build_stage("dedup", {"index_dir": str(index)}, index=1, output_dir=tmp_path)
    (index / "params.json").write_text(json.dumps(first.plan.key_params()))
    build_stage("dedup", {"against": [str(index)]}, index=1, output_dir=tmp_path).prepare()
    with pytest.raises(UserError, match="other parameters .*ngram"):
        build_stage("dedup", {"against": [str(index)], "ngram": 3}, index=1, output_dir=tmp_path).prepare()
    # rensa's signatures are comparable only within one version of its algorithm, and never with datasketch's
    assert first.plan.key_params()["scheme"] == f"rensa-{rensa.RMinHash.ALGORITHM_VERSION}"
    (index / "params.json").write_text(json.dumps({**first.plan.key_params(), "scheme": "rensa-1"}))
    with pytest.raises(UserError, match=r"other parameters \(scheme\)"):
        build_stage("dedup", {"against": [str(index)]}, index=1, output_dir=tmp_path).prepare()
    (index / "params.json").write_text(json.dumps({**first.plan.key_params(), "scheme": "affine32"}))
    build_stage("dedup", {"against": [str(index)], "scheme": "affine32"}, index=1, output_dir=tmp_path).prepare()
    with pytest.raises(UserError, match="not a dedup index"):
        build_stage("dedup", {"against": [str(tmp_path)]}, index=1, output_dir=tmp_path).prepare()


@pytest.mark.shared_data
def test_boilerplate_lines_removed(run_stage, shared_data):
    texts = _news(shared_data, 12)
    footer = "Subscribe to our newsletter for daily updates"
    rows = [{"id": f"d{i}", "text": f"{t}\n{footer}\nShared line only twice" if i < 2 else f"{t}\n{footer}"} for i, t in enumerate(texts)]
    rows.append({"id": "only", "text": footer})
    kept, dropped = run_stage("dedup", {"boilerplate": {"max_docs": 5}}, rows)
    assert {r["id"]: r["_drop_reason"] for r in dropped} == {"only": "boilerplate"}
    assert all(footer not in r["text"] for r in kept)
    assert sum("Shared line only twice" in r["text"] for r in kept) == 2


@pytest.mark.shared_data
def test_instruction_records(run_stage, shared_data):
    texts = _news(shared_data, 4)

    def rec(i, q, a):
        return {"id": f"i{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}

    rows = [rec(0, texts[0], "Answer one."), rec(1, texts[0], texts[2]), rec(2, texts[1], "Answer.")]
    _, dropped = run_stage("dedup", {"field": "instruction"}, rows)
    # same user turn, so the same length under this view: the smaller id survives
    assert [(r["id"], r["dup_of"]) for r in dropped] == [("i1", "i0")]


def test_instruction_plus_response_view():
    import pyarrow as pa

    from pipeline.config import build_stage

    stage = build_stage("dedup", {"field": "instruction+response"}, index=1, output_dir=".")
    msgs = [[{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]]
    assert stage.plan.texts(pa.table({"messages": msgs})).to_pylist() == ["Q\n\nA"]
