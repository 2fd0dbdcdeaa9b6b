"""`pipeline run` with the perplexity stage scoring through a real vLLM CPU server's prompt log-probs,
against the same config on the in-process transformers backend: the same model gives the same scores,
and the run's statistics carry the stage's drops by reason."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.cli import cli


# Starting vLLM on 2 busy cores takes minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def run(config: dict, path: Path, env: dict) -> dict:
    path.write_text(yaml.safe_dump(config))
    proc = cli("run", str(path), "--quiet", env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(config["output"]["path"])
    rows = pq.read_table(out / "data").to_pylist() + pq.read_table(out / "rejects" / "01-perplexity").to_pylist()
    stats = json.loads((out / "stats.json").read_text())
    return {"scores": {r["id"]: r["perplexity"] for r in rows}, "stage": stats["stages"][-1]}


def test_vllm_scores_equal_the_transformers_backends(tmp_path, shared_data, vllm_venv):
    from tiny_models.llama import build_tiny_model

    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        news = [d for _, _, d in csv.reader(f)]
    model = build_tiny_model(tmp_path / "model", news[:2000], vocab_size=2000)
    rng = random.Random(0)
    docs = [{"id": f"n{i}", "text": t} for i, t in enumerate(news[3000:3030])]
    docs += [{"id": f"s{i}", "text": " ".join(rng.sample(t.split(), len(t.split())))} for i, t in enumerate(news[3030:3040])]
    docs.append({"id": "long", "text": " ".join(news[4000:4100])})  # cut at max_tokens, within the server's context
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))

    def config(name: str, llm: dict) -> dict:
        return {"name": name, "input": {"format": "jsonl", "paths": [str(data)]}, "output": {"path": str(tmp_path / name)},
                "stages": [{"perplexity": {"llm": "scorer", "max_tokens": 256, "keep_share": 0.8}}],
                "llms": {"scorer": {"model": str(model), "dtype": "float32", **llm}}}

    env = {**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}
    served = run(config("vllm", {"backend": "vllm_server", "cpu": True, "max_model_len": 512, "startup_timeout_s": 600}),
                 tmp_path / "vllm.yaml", env)
    local = run(config("local", {"backend": "transformers"}), tmp_path / "local.yaml", env)

    assert set(served["scores"]) == {d["id"] for d in docs}
    for id, score in local["scores"].items():
        assert served["scores"][id] == pytest.approx(score, rel=1e-3), id
    for result in (served, local):
        stage = result["stage"]
        assert stage["rows_in"] == len(docs) and stage["kept"] >= 0.8 * len(docs)
        assert stage["dropped_by_reason"] == {"perplexity_above_keep_share": stage["dropped"]} and stage["dropped"] > 0
