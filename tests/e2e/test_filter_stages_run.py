"""`pipeline run` with url_filter -> pii -> heuristics on documents: drops by reason, redaction, cleaned text."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from text_samples import extracted_pages, sentence_lines

from tests.cli import cli

CONFIG = """
name: filters
input: {{format: jsonl, paths: ["{dir}/docs.jsonl"]}}
output: {{path: "{dir}/out"}}
stages:
  - url_filter: {{domain_files: ["{dir}/blocked.txt"], url_substrings: ["/ads/"]}}
  - pii: {{}}
  - heuristics: {{}}
"""


@pytest.mark.slow
def test_pipeline_run_filters_redacts_and_cleans(tmp_path, shared_data):
    good = "\n".join(sentence_lines(12))
    rows = [
        {"id": "pii", "text": good + "\nWrite to jane@example.org or call (650) 253-0000 today.", "url": "https://news.example.org/a"},
        {"id": "nav", "text": "Home\nLogin\n" + good, "url": "https://news.example.org/b"},
        {"id": "blocked", "text": good, "url": "https://www.casino.example/x"},
        {"id": "ads", "text": good, "url": "https://ok.example.net/ads/banner"},
        {"id": "short", "text": "Home\nLogin", "url": "https://ok.example.net/c"},
        *({"id": f"page{i}", "text": t, "url": f"https://pages.example/{i}"} for i, t in enumerate(extracted_pages(shared_data, 8)) if t),
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "blocked.txt").write_text("# block list\ncasino.example\n")
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(dir=tmp_path))

    proc = cli("run", "--quiet", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]

    stages = {s["name"]: s for s in json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]}
    assert stages["url_filter"]["dropped_by_reason"] == {"url_filter.domain": 1, "url_filter.url_substring": 1}
    assert stages["pii"]["metrics"]["replaced"]["email"] >= 1 and stages["pii"]["metrics"]["replaced"]["phone"] >= 1
    heuristics = stages["heuristics"]
    assert heuristics["kept"] + heuristics["dropped"] == heuristics["rows_in"] == len(rows) - 2
    assert all(reason.split(".")[0] in {"gopher_repetition", "gopher_quality", "c4", "fineweb", "heuristics"} for reason in heuristics["dropped_by_reason"])

    kept = {r["id"]: r for p in sorted((tmp_path / "out").glob("**/*.parquet")) if "rejects" not in p.parts and ".pipeline" not in p.parts
            for r in pq.read_table(p).to_pylist()}
    assert kept["pii"]["text"].endswith("Write to <EMAIL> or call <PHONE> today.")
    assert kept["nav"]["text"] == good
    assert "short" not in kept and "blocked" not in kept
