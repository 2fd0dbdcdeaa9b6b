"""`pipeline run` on a real multi-node Ray cluster (tests/cluster.py): a node that lacks a dependency,
a node lost mid-run, a driver killed mid-run, a run submitted as a Ray Job, and a web-curation run
from and to object storage that gives exactly the rows of the same run on local disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import RayCluster, python_without

pytestmark = pytest.mark.slow

PIPELINE = [sys.executable, "-m", "pipeline.cli"]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*PIPELINE, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_a_node_without_a_stage_dependency_is_one_line_naming_the_module_and_the_node(shared_data, tmp_path):
    """The only node with CPUs runs from a Python environment without fastText, which the language
    stage loads on its workers: the run stops with one line, exit 2, naming the module and that node."""
    cluster = RayCluster()
    try:
        cluster.start_head(num_cpus=0)  # nothing runs on the head: every task lands on the worker
        worker = cluster.add_worker(python=python_without(tmp_path, "fasttext"))
        node_id = next(a.split("=", 1)[1] for a in worker.raylet().cmdline() if a.startswith("--node_id="))
        config = write_config(tmp_path / "c.yaml", {
            "input": {"format": "jsonl", "paths": [str(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")],
                      "kind": "document", "fields": {"text": "question"}, "limit": 20},
            "output": {"path": str(tmp_path / "out")},
            "stages": [{"language": {"keep": ["en"]}}],
        })
        run = cli("run", "--quiet", str(config), env=cluster.client_env())
    finally:
        cluster.stop()
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "'fasttext'" in lines[0] and f"(id {node_id[:8]})" in lines[0], lines[0]
    assert "runtime_env" in lines[0] and "docs/cluster.md" in lines[0]
