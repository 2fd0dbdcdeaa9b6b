"""`pipeline run` mixing two named inputs 4:1 in tokens, after labelling domains by URL rules."""

from __future__ import annotations

import csv
import json
import re

import pyarrow.parquet as pq
import pytest

from tests.cli import cli

CONFIG = """
name: mix
input:
  - {{format: jsonl, paths: ["{dir}/curated.jsonl"], name: curated}}
  - {{format: jsonl, paths: ["{dir}/web.jsonl"], name: web}}
output: {{path: "{dir}/out"}}
seed: 3
stages:
  - domain: {{rules: "{dir}/domains.csv", default: news}}
  - reweight: {{by: source, weights: {{curated: 4, web: 1}}, max_copies: 6}}
"""


@pytest.mark.slow
def test_pipeline_run_mixes_sources_by_token_weights(tmp_path, shared_data):
    folder = shared_data / "classification" / "ag_news"
    with open(folder / "train80.csv", newline="", encoding="utf-8") as f:
        news = list(csv.reader(f))[:1500]
    with open(tmp_path / "curated.jsonl", "w") as cur, open(tmp_path / "web.jsonl", "w") as web:
        for i, (cls, _title, text) in enumerate(news):
            out, host = (cur, "sport.example") if cls in ("2", "4") else (web, f"site{i % 7}.example")
            out.write(json.dumps({"id": f"n{i}", "text": text, "url": f"https://{host}/a/{i}"}) + "\n")
    (tmp_path / "domains.csv").write_text("match,pattern,label\nhost,sport.example,sports_tech\n")
    config = tmp_path / "mix.yaml"
    config.write_text(CONFIG.format(dir=tmp_path))

    proc = cli("run", "--quiet", str(config), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    metrics = {s["stage"] if "stage" in s else s.get("name"): s.get("metrics", {}) for s in stats["stages"]}
    mix = next(m for m in metrics.values() if m.get("by") == "source")
    assert mix["groups"]["curated"]["target_share"] == pytest.approx(0.8)
    assert mix["groups"]["curated"]["realised_share"] == pytest.approx(0.8, abs=0.03)
    assert mix["groups"]["web"]["downsampled"] > 0 and mix["groups"]["curated"]["copies_added"] > 0

    rows = [r for p in sorted((tmp_path / "out").glob("**/*.parquet")) if "rejects" not in p.parts and ".pipeline" not in p.parts
            for r in pq.read_table(p).to_pylist()]
    tokens = {"curated": 0, "web": 0}
    for r in rows:
        tokens[r["source"]] += len(r["text"].split())
    assert tokens["curated"] / sum(tokens.values()) == pytest.approx(0.8, abs=0.03)
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["domain_label"] for r in rows if r["source"] == "curated"} == {"sports_tech"}
    assert {r["domain_label"] for r in rows if r["source"] == "web"} == {"news"}
    assert all(r["origin_id"].startswith("n") and (r["copy_index"] == 0) == (r["id"] == r["origin_id"]) for r in rows)

    # `inspect` adds up as the console does: in - dropped + created = kept
    shown = cli("inspect", str(tmp_path / "out"), timeout=120).stdout
    line = next(line for line in shown.splitlines() if "-reweight" in line).replace(",", "")
    n = {word: int(m) for word in ("in", "kept", "dropped", "created") for m in re.findall(rf"\b{word} +(\d+)", line)}
    assert n["in"] - n["dropped"] + n["created"] == n["kept"] and n["created"] > 0
