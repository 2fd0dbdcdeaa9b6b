"""`pipeline run` with `select`: the budget of best, distinct rows kept, every other row's reason in the report."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tiny_models.embedder import build, vocabulary
from tests.cli import cli

CONFIG = """
name: selected
input: {{format: jsonl, paths: ["{dir}/rows.jsonl"]}}
output: {{path: "{dir}/out"}}
stages:
  - select: {{model: "{model}", keep: 4, score_columns: [quality]}}
"""

TOPICS = ["The central bank raised interest rates again to slow rising consumer prices across the country.",
          "The home team won the championship final after scoring twice in the last ten minutes of play.",
          "Researchers released a new open source compiler that makes numerical programs run much faster.",
          "Heavy rain flooded several villages in the valley and rescue teams evacuated hundreds of people.",
          "The museum opened an exhibition of early photographs taken by travellers in the nineteenth century."]


@pytest.mark.slow
def test_select_keeps_the_best_distinct_rows_and_reports_why_others_went(tmp_path):
    model = build(tmp_path / "embedder", vocabulary(TOPICS), dim=32)
    rows = [{"id": f"t{i}", "text": t, "quality": 0.5 + i / 20} for i, t in enumerate(TOPICS)]
    rows.append({"id": "t4_again", "text": TOPICS[4].replace("The museum", "A museum"), "quality": 0.95})  # a near copy of the best
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(dir=tmp_path, model=model))

    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]

    kept = {r["id"] for p in (tmp_path / "out" / "data").glob("*.parquet") for r in pq.read_table(p, columns=["id"]).to_pylist()}
    assert kept == {"t4_again", "t3", "t2", "t1"}  # the copy outscored t4, which then went for it; t0 is fifth
    [stage] = [s for s in json.loads((tmp_path / "out" / "stats.json").read_text())["stages"] if s["name"] == "select"]
    assert stage["dropped_by_reason"] == {"select_too_similar": 1, "select_over_budget": 1}
    assert "select_too_similar" in (tmp_path / "out" / "report.html").read_text()
