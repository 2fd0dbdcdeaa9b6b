"""Annotate-then-classify with FineWeb-Edu's classifier: `train-classifier --embedding-model` learns the
scores with a regression head on a (tiny, locally built) sentence-transformers model, and the `quality`
stage scores every row with it, as a user runs both."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from tiny_models.embedder import build, vocabulary
from tests.cli import cli

CONFIG = """
name: edu
input: {{format: jsonl, paths: ["{dir}/docs.jsonl"]}}
output: {{path: "{dir}/{out}"}}
stages:
  - quality: {{model: "{dir}/{model}", top_fraction: 0.3}}
"""


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_regression_head_learns_the_ratings_and_scores_the_corpus(tmp_path, shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        rows = [(label, f"{title}. {desc}") for label, title, desc in csv.reader(f)]
    model = build(tmp_path / "embedder", vocabulary(t for _, t in rows), dim=256)
    # Sports stories (class 2) stand in for what an annotator rated 5, the rest 0
    (tmp_path / "rated.jsonl").write_text("".join(json.dumps({"text": t, "edu": 5 if c == "2" else 0}) + "\n" for c, t in rows[:2500]))
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": t, "url": c}) + "\n"
                                                 for i, (c, t) in enumerate(rows[2500:3500])))

    proc = cli("train-classifier", "--data", str(tmp_path / "rated.jsonl"), "--score-field", "edu",
                "--embedding-model", str(model), "-o", str(tmp_path / "edu.json"), "--test-fraction", "0.2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "edu.json.metrics.json").read_text())
    assert metrics["auc"] > 0.75 and metrics["agreement"]["pearson"] > 0.3 and metrics["head"]["scale"] == [0.0, 5.0]

    (tmp_path / "run.yaml").write_text(CONFIG.format(dir=tmp_path, out="out", model="edu.json"))
    proc = cli("run", "--quiet", str(tmp_path / "run.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept = [r for p in (tmp_path / "out" / "data").glob("*.parquet") for r in pq.read_table(p, columns=["url", "quality"]).to_pylist()]
    assert 280 <= len(kept) <= 320 and all(0 <= r["quality"] <= 1 for r in kept)  # the best 30% of 1,000
    sports = sum(r["url"] == "2" for r in kept) / len(kept)
    assert sports > 0.5  # a quarter of the corpus, most of what the head rates best

    (tmp_path / "other.json").write_text("{}")
    (tmp_path / "bad.yaml").write_text(CONFIG.format(dir=tmp_path, out="bad", model="other.json"))
    proc = cli("run", "--quiet", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2 and "is not a regression head" in proc.stderr and "Traceback" not in proc.stderr
