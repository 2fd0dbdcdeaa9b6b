"""The select stage through the engine's path, on real AG News text with better-scored near copies,
with a real (tiny, locally built) sentence-transformers model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from text_samples import ag_news_stories
from tiny_models.embedder import build, vocabulary


@pytest.fixture(scope="module")
def model(tmp_path_factory, shared_data) -> str:
    return str(build(tmp_path_factory.mktemp("select_embedder"), vocabulary(ag_news_stories(shared_data, 400)), dim=64))


@pytest.fixture(scope="module")
def rows(shared_data):
    """60 stories with scores in [0, 0.8), and a near copy (one word dropped) of 12 of them scored above the rest."""
    rng = random.Random(5)
    base = ag_news_stories(shared_data, 60)
    rows = [{"id": f"doc{i:03d}", "text": t, "quality": round(rng.random() * 0.8, 3), "complexity": 1.0} for i, t in enumerate(base)]
    for i in range(12):
        words = base[i].split()
        del words[rng.randrange(len(words))]
        rows.append({"id": f"copy{i:03d}", "text": " ".join(words), "quality": 0.9, "complexity": 1.0})
    return rows


@pytest.mark.shared_data
def test_score_first_keeps_the_budget_of_best_rows_and_no_near_copies(run_stage, model, rows):
    from filters.embeddings import Embedder

    kept, dropped = run_stage("select", {"model": model, "keep": 30, "score_columns": ["quality", "complexity"]}, rows)
    assert len(kept) == 30 and len(kept) + len(dropped) == len(rows)
    by_id = {r["id"]: r for r in kept + dropped}
    # each better-scored copy went in first; its original was then skipped for it
    assert all(f"copy{i:03d}" in {r["id"] for r in kept} for i in range(12))
    too_similar = {r["id"]: r for r in dropped if r["_drop_reason"] == "select_too_similar"}
    assert set(too_similar) == {f"doc{i:03d}" for i in range(12) if by_id[f"doc{i:03d}"]["select_rank"] < max(r["select_rank"] for r in kept)}
    assert all(r["select_nearest"] == "copy" + r["id"][3:] and r["select_nearest_cosine"] >= 0.9 for r in too_similar.values())
    over = [r for r in dropped if r["_drop_reason"] == "select_over_budget"]
    assert min(r["select_rank"] for r in over) > max(r["select_rank"] for r in kept)  # the budget went to the best
    vectors = Embedder(model).encode([r["text"] for r in kept])
    sims = vectors @ vectors.T
    assert (sims[~np.eye(len(kept), dtype=bool)] < 0.9).all()


@pytest.mark.shared_data
def test_k_center_spreads_the_budget_and_explains_every_row(run_stage, model, rows):
    kept, dropped = run_stage("select", {"model": model, "keep_share": 0.25, "method": "k_center"}, rows)
    assert len(kept) == 18  # 25% of 72
    assert {r["_drop_reason"] for r in dropped} == {"select_over_budget"}
    assert all(r["select_nearest"] is not None and -1 <= r["select_nearest_cosine"] <= 1 for r in dropped)
    kept_ids = {r["id"] for r in kept}
    assert not any(f"copy{i:03d}" in kept_ids and f"doc{i:03d}" in kept_ids for i in range(12))  # never both of a pair
    assert not any(k.startswith("_vector") for k in kept[0])


def test_a_missing_score_column_is_one_line(run_stage, model, rows):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match=r"score column\(s\) reward not in the data"):
        run_stage("select", {"model": model, "keep": 5, "score_columns": ["reward"]}, rows[:5])
