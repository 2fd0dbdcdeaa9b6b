"""A file a stage's options name (a block list here; a classifier, a KenLM model, a seed file) is part of
what a run's results depend on: changed under the same name, the run is redone, not reported complete."""

from __future__ import annotations

import json

from tests.cli import cli

CONFIG = """
name: named-files
input: {format: jsonl, paths: [docs.jsonl]}
output: {path: out}
stages:
  - url_filter: {domain_files: [blocked.txt]}
"""


def _run(folder) -> dict:
    proc = cli("run", "--quiet", "run.yaml", cwd=folder, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {s["name"]: s for s in json.loads((folder / "out" / "stats.json").read_text())["stages"]}


def test_a_block_list_changed_in_place_reruns_the_stage(tmp_path):
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"id": i, "text": f"A page about {topic} and more.", "url": url}) + "\n"
                                                 for i, topic, url in [("a", "cats", "https://one.example/a"),
                                                                       ("b", "birds", "https://two.example/b")]))
    (tmp_path / "blocked.txt").write_text("none.example\n")
    (tmp_path / "run.yaml").write_text(CONFIG)
    assert _run(tmp_path)["url_filter"]["dropped"] == 0
    (tmp_path / "blocked.txt").write_text("none.example\none.example\n")
    assert _run(tmp_path)["url_filter"]["dropped"] == 1  # the old result was reported complete
