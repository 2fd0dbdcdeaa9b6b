"""Annotate, then classify, as a user runs it: configs/annotate.yaml (the pipeline starts a real vLLM
CPU server with the seed-trained tiny teacher, which rates a sample of real web pages under guided
decoding), `pipeline train-classifier --score-field` on that run's output, then
configs/annotate_quality.yaml with the trained model over every page. Only sizes and paths are changed
with --set; the commands are those of the configs' header and docs/synthetic.md."""

from __future__ import annotations

import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.cli import cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _pipeline(*args: str, env: dict) -> subprocess.CompletedProcess:
    return cli(*args, env=env, timeout=1500)


def test_annotate_then_train_classifier_then_quality(tmp_path, shared_data, vllm_venv, trained_teacher):
    env = {**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}
    annotated, filtered, model = tmp_path / "annotate", tmp_path / "quality", tmp_path / "edu.bin"
    pages = f"[{shared_data}/extraction/trafilatura_eval/html/*.gz]"

    run = _pipeline("run", "configs/annotate.yaml", "--quiet", "--set", f"input.paths={pages}", "--set", "input.limit=150",
                    "--set", f"output.path={annotated}", "--set", "stages.annotate.sample=80", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = {s["name"]: s for s in json.loads((annotated / "stats.json").read_text())["stages"]}
    rows = pq.read_table(annotated / "data").to_pylist()
    assert stats["annotate"]["kept"] == len(rows) == stats["extract"]["kept"] and stats["annotate"]["dropped"] == 0
    sampled = [r for r in rows if r["annotation_prompt"] is not None]
    scored = [r for r in sampled if r["annotation_score"] is not None]
    metrics = stats["annotate"]["metrics"]
    assert len(sampled) == 80 == metrics["sampled"] and metrics["scored"] == len(scored)
    assert len(scored) >= 0.9 * len(sampled)  # guided: the teacher's answers end in a score line
    assert all(0 <= r["annotation_score"] <= 5 and float(r["annotation_score"]).is_integer() for r in scored)
    assert {r["annotation_prompt"] for r in sampled} == {"annotate.educational_value@1"}
    assert all(r["annotation_score"] is None and r["annotation_rationale"] is None for r in rows if r not in sampled)

    train = _pipeline("train-classifier", "--data", str(annotated), "--score-field", "annotation_score", "--min-score", "3",
                      "-o", str(model), "--threads", "1", env=env)
    assert train.returncode == 0, train.stderr[-3000:]
    report = json.loads((tmp_path / "edu.bin.metrics.json").read_text())
    assert report["labels"] == ["cc", "hq"] and report["n_train"] + report["n_test"] == len(scored)
    assert report["unscored_rows"] == len(rows) - len(scored)  # unsampled and unparsed rows are not training data
    assert "accuracy" in report and "held out" in train.stdout

    quality = _pipeline("run", "configs/annotate_quality.yaml", "--quiet", "--set", f"input.paths=[{annotated}/data/*.parquet]",
                        "--set", f"output.path={filtered}", "--set", f"stages.quality.model={model}", env=env)
    assert quality.returncode == 0, quality.stderr[-3000:]
    kept = pq.read_table(filtered / "data").to_pylist()
    rejected = pq.read_table(filtered / "rejects" / "01-quality").to_pylist()
    assert len(kept) + len(rejected) == len(rows)  # the whole corpus scored, annotated or not
    assert abs(len(kept) - 0.3 * len(rows)) <= 0.05 * len(rows)
    assert {r["reason"] for r in rejected} == {"quality_below_top_fraction"}
    assert min(r["quality"] for r in kept) >= max(r["quality"] for r in rejected)
    rated = {r["id"] for r in sampled}
    assert any(r["id"] not in rated for r in kept)  # pages the LLM never saw are judged by the classifier
    applied = next(s for s in json.loads((filtered / "stats.json").read_text())["stages"] if s["name"] == "quality")
    assert applied["metrics"]["classifier_held_out"]["accuracy"] == report["accuracy"]  # the agreement, in the run's report
    assert "classifier_held_out" in (filtered / "report.html").read_text()
