"""decontaminate's semantic pass through `pipeline run`, its judge a real vLLM CPU server the pipeline starts.

A GSM8K question reworded by hand (no run of its words the n-grams could find) is planted in a document
beside a clean one. The test checks that the reworded item, and only it, reaches the judge, and that the
judge's verdict and reason land in the `contamination` column. The judge is the seed-trained tiny teacher
(`make_tiny_model.py --train-on-seeds`), decoding under the verdict's regex (structured outputs): its
verdicts say nothing of a real judge's accuracy, only that what it answers is what the row records.
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
import yaml

from benchmarks.bench_contamination_leaks import idf_weighted_model
from filters.contamination import REGISTRY, load_items
from tests.cli import cli

CLEAN = ("Notes from the weekend workshop on gardening, with photos and a list of the plants we swapped. We met at the "
         "community hall, shared seeds and cuttings, and talked about the dry summer and what it did to the beds.")
JANET = ("Each day the ducks that Janet keeps produce 16 eggs. Three of them she eats at breakfast every morning, and "
         "with another four she bakes muffins for her friends daily. The rest go to the farmers' market, where every fresh "
         "duck egg sells for $2. What does she earn at the farmers' market per day, in dollars?")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # starting vLLM on 2 busy cores takes minutes


def test_a_reworded_item_reaches_the_judge_and_its_verdict_lands_in_the_column(tmp_path, shared_data, vllm_venv, trained_teacher):
    gsm = load_items(REGISTRY["gsm8k"], shared_data / "benchmarks")
    embedder = idf_weighted_model(tmp_path / "embedder", ["\n".join(i.parts) for i in gsm] + [CLEAN, JANET])
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "clean", "text": CLEAN + " " + CLEAN},
        {"id": "leak", "text": CLEAN + "\n" + JANET + "\n" + CLEAN},
    ]))
    out = tmp_path / "out"
    config = {
        "name": "semantic-decontamination",
        "input": {"format": "jsonl", "paths": [str(docs)]},
        "output": {"path": str(out)},
        "stages": [{"decontaminate": {
            "benchmarks": ["gsm8k"], "benchmarks_dir": str(shared_data / "benchmarks"), "action": "flag",
            "semantic": {"model": str(embedder), "judge": "teacher", "top_k": 1, "min_cosine": 0.45, "max_tokens": 48},
        }}],
        "llms": {"teacher": {"backend": "vllm_server", "model": str(trained_teacher), "cpu": True, "dtype": "float32",
                             "max_model_len": 2048, "startup_timeout_s": 900}},
    }
    path = tmp_path / "semantic.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = cli("run", str(path), "--quiet", env={**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}, timeout=2000)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = {r["id"]: r for r in pq.read_table(out / "data").to_pylist()}
    assert rows["clean"]["contamination"] == []  # no candidate near enough: never sent to the judge
    [hit] = rows["leak"]["contamination"]  # the planted item reached the judge, whose yes is a hit on it
    stats = json.loads((out / "stats.json").read_text())
    [stage] = [s for s in stats["stages"] if s["name"] == "decontaminate"]
    # Greedy decoding under the verdict's regex: the tiny teacher answers yes here, with word soup for a reason.
    assert (hit["benchmark"], hit["item_id"], hit["method"], hit["verdict"]) == ("gsm8k", "0", "semantic", "yes")
    assert hit["reason"].strip() and "\n" not in hit["reason"] and hit["judge"] == str(trained_teacher)
    span = hit["spans"][0]
    assert "Janet" in rows["leak"]["text"][span["start"]:span["end"]] and hit["cosine"] >= 0.45
    metrics = stage["metrics"]
    assert metrics["benchmarks"]["gsm8k"]["rows_with_semantic_hits"] == 1 and metrics["semantic"]["rows_unjudged"] == 0
