"""The semdedup stage through the engine's path, on real AG News text with planted paraphrases,
with a real (tiny, locally built) sentence-transformers model."""

from __future__ import annotations

import json
import random

import pytest

from text_samples import ag_news_stories
from tiny_models.embedder import build, vocabulary


def _paraphrase(text: str, rng: random.Random) -> str:
    """Two words fewer and the clauses in another order: shorter, so the original is the one kept."""
    words = text.split()
    for _ in range(2):
        del words[rng.randrange(len(words))]
    cut = len(words) // 2
    return " ".join(words[cut:] + words[:cut])


@pytest.fixture(scope="module")
def model(tmp_path_factory, shared_data) -> str:
    return str(build(tmp_path_factory.mktemp("embedder"), vocabulary(ag_news_stories(shared_data, 400)), dim=64))


@pytest.fixture(scope="module")
def corpus(shared_data):
    rng = random.Random(3)
    base = ag_news_stories(shared_data, 60)
    rows = [{"id": f"doc{i:03d}", "text": t} for i, t in enumerate(base)]
    planted = {f"para{i:03d}": f"doc{i:03d}" for i in range(12)}
    rows += [{"id": p, "text": _paraphrase(base[int(o[3:])], rng)} for p, o in planted.items()]
    return rows, planted


@pytest.mark.shared_data
def test_planted_paraphrases_are_removed_for_their_original(run_stage, model, corpus):
    rows, planted = corpus
    config = {"model": model, "threshold": 0.9, "clusters": 3, "partitions": 2}
    kept, dropped = run_stage("semdedup", config, rows)
    assert len(kept) + len(dropped) == len(rows)
    assert {r["id"]: r["semdup_of"] for r in dropped} == planted
    assert all(r["_drop_reason"] == "semantic_duplicate" and r["semdup_cosine"] >= 0.9 for r in dropped)
    assert all(r["semdup_of"] is None and r["semdup_cosine"] is None for r in kept)
    cluster = {r["id"]: r["semdup_cluster"] for r in kept + dropped}
    assert set(cluster.values()) <= {0, 1, 2} and all(cluster[p] == cluster[o] for p, o in planted.items())
    assert not any(k.startswith("_vector") for k in kept[0])

    # the same verdicts whatever the order of rows and the number of partitions
    verdict = lambda rs: sorted((r["id"], r["semdup_of"]) for r in rs)  # noqa: E731
    again_kept, again_dropped = run_stage("semdedup", {**config, "partitions": 3}, list(reversed(rows)))
    assert verdict(again_dropped) == verdict(dropped) and verdict(again_kept) == verdict(kept)


@pytest.mark.shared_data
def test_a_better_scored_copy_is_the_one_kept(run_stage, model, corpus):
    rows, planted = corpus
    scored = [{**r, "quality": 0.9 if r["id"] in planted else 0.5} for r in rows]
    kept, dropped = run_stage("semdedup", {"model": model, "clusters": 1}, scored)
    assert {r["id"]: r["semdup_of"] for r in dropped} == {o: p for p, o in planted.items()}
    # the same score as a field of the input (a JSONL file's own `reward`, kept in `meta`)
    carried = [{**r, "meta": json.dumps({"reward": 0.9 if r["id"] in planted else 0.5})} for r in rows]
    kept, dropped = run_stage("semdedup", {"model": model, "clusters": 1, "quality_column": "reward"}, carried)
    assert {r["id"]: r["semdup_of"] for r in dropped} == {o: p for p, o in planted.items()}


@pytest.mark.shared_data
def test_the_default_cluster_count_follows_the_live_rows(run_stage, model, shared_data):
    """One cluster per 1,000 live rows: 2,100 rows in any number of slices give 3 (the count once came from slices: 1)."""
    rows = [{"id": f"n{i:04d}", "text": t} for i, t in enumerate(ag_news_stories(shared_data, 10_000)[:2100])]
    assert len(rows) == 2100
    kept, dropped = run_stage("semdedup", {"model": model}, rows)
    assert {r["semdup_cluster"] for r in kept + dropped} == {0, 1, 2}
