"""`pipeline run` with dedup -> semdedup on AG News with planted copies and paraphrases, as a user runs it."""

from __future__ import annotations

import csv
import json
import random
import subprocess

import pyarrow.parquet as pq
import pytest

from tiny_models.embedder import build, vocabulary
from tests.cli import cli

CONFIG = """
name: semantic
input: {{format: jsonl, paths: ["{dir}/docs.jsonl"]}}
output: {{path: "{dir}/out"}}
stages:
  - dedup: {{method: exact}}
  - semdedup: {{model: "{model}", threshold: 0.9, clusters: 2}}
"""


def _run(config) -> subprocess.CompletedProcess:
    return cli("run", "--quiet", str(config))


@pytest.mark.slow
@pytest.mark.shared_data
def test_semdedup_removes_paraphrases_that_exact_dedup_keeps(tmp_path, shared_data):
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        base = [f"{t}. {d}" for _, t, d in csv.reader(f) if len(d.split()) >= 25][:50]
    rng = random.Random(5)
    rows = [{"id": f"doc{i:02d}", "text": t} for i, t in enumerate(base)]
    rows += [{"id": f"x{i}", "text": base[i]} for i in range(3)]  # exact copies (dedup keeps the smaller id, doc..)
    paraphrases = {}
    for i in range(10, 18):  # reordered with two words dropped: semdedup's
        words = base[i].split()
        del words[rng.randrange(len(words))], words[rng.randrange(len(words) - 1)]
        paraphrases[f"para{i}"] = f"doc{i:02d}"
        rows.append({"id": f"para{i}", "text": " ".join(words[len(words) // 2:] + words[: len(words) // 2])})
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = build(tmp_path / "model", vocabulary(base), dim=64)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(dir=tmp_path, model=model))

    proc = _run(config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = {s["name"]: s for s in json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]}
    assert stages["dedup"]["dropped_by_reason"] == {"exact_duplicate": 3}
    sem = stages["semdedup"]
    assert sem["rows_in"] == 58 and sem["dropped_by_reason"] == {"semantic_duplicate": 8}
    assert sem["metrics"]["duplicates"] == 8 and sem["metrics"]["clusters"] == 2

    out = tmp_path / "out"
    kept = [r for p in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(kept) == 50 and {r["id"] for r in kept} == {f"doc{i:02d}" for i in range(50)}
    assert all(r["semdup_cluster"] in (0, 1) and r["semdup_of"] is None for r in kept)
    assert not any(k.startswith("_vector") for k in kept[0])
    rejects = [r for p in sorted((out / "rejects").glob("*semdedup*/*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert {r["id"]: r["semdup_of"] for r in rejects} == paraphrases
    assert all(r["semdup_cosine"] >= 0.9 for r in rejects)
    assert "semdedup" in (out / "report.html").read_text()


def test_a_missing_model_is_one_line_before_ray_starts(tmp_path):
    (tmp_path / "docs.jsonl").write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(dir=tmp_path, model=tmp_path / "no-model"))
    proc = _run(config)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert f"embedding model {tmp_path / 'no-model'} does not exist" in proc.stderr
