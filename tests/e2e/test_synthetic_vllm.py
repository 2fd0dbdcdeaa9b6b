"""configs/synthetic.yaml end to end through `pipeline run`, against a real vLLM CPU server.

The pipeline starts the server itself (managed mode) with the tiny local model and stops it at
the end. The model's weights are random, so its text is noise: the test checks that every step
ran for real and accounted for every row, not what the model wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Starting vLLM on 2 busy cores and seven Ray stages take minutes; give it more than the default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def vllm_venv() -> Path:
    venv = Path(os.environ.get("PIPELINE_VLLM_VENV", ROOT / ".venv-vllm"))
    if not (venv / "bin" / "python").exists():
        reason = f"vLLM venv not found at {venv}; run scripts/setup_vllm_cpu.sh or set PIPELINE_VLLM_VENV"
        if os.environ.get("PIPELINE_REQUIRE_VLLM") == "1":
            pytest.fail(reason + " (PIPELINE_REQUIRE_VLLM=1)")
        pytest.skip(reason)
    return venv


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("tiny-llama-synthetic")
    subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(out)], check=True, cwd=ROOT,
                   env={**os.environ, "PIPELINE_SHARED_DATA": str(shared_data)}, capture_output=True)  # fmt: skip
    return out


def test_synthetic_config_runs_end_to_end_on_vllm(tmp_path, shared_data, vllm_venv, tiny_model_dir):
    out = tmp_path / "out"
    seeds = shared_data / "seeds/self_instruct/seed_tasks.jsonl"
    overrides = {
        "input.paths": f"[{seeds}]", "input.limit": 12, "output.path": out,
        "llms.teacher.model": tiny_model_dir, "llms.teacher.cache_dir": "null",
        "stages.self_instruct.target": 3, "stages.self_instruct.requests_per_round": 4,
        "stages.self_instruct.max_stale_rounds": 2, "stages.self_instruct.max_tokens": 64,
        "stages.self_instruct.instance_max_tokens": 48, "stages.evol_instruct.rounds": 2,
        "stages.evol_instruct.max_tokens": 32, "stages.evol_instruct.response_max_tokens": 32,
        "stages.respond.max_tokens": 32, "stages.decontaminate.benchmarks_dir": shared_data / "benchmarks",
        "stages.decontaminate.benchmarks": "[gsm8k]",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(ROOT / "configs/synthetic.yaml"), "--quiet"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]

    stats = json.loads((out / "stats.json").read_text())
    stages = {s["id"]: s for s in stats["stages"]}
    assert list(stages) == ["00-read", "01-self_instruct", "02-evol_instruct", "03-respond", "04-heuristics", "05-dedup", "06-decontaminate"]

    si = stages["01-self_instruct"]["metrics"]
    assert si["requests"] >= si["rounds"] * 4 and si["seeds"] == 12
    assert si["pooled"] == 3 or si["stopped_early"]
    # Every proposal the model made is in the rejects or the output, with its reason.
    rejects = pq.read_table(out / "rejects" / "01-self_instruct").to_pylist()
    assert sum(si["proposal_drops"].values()) == len([r for r in rejects if r["source"] == "self_instruct"])
    for r in rejects:
        assert json.loads(r["meta"])["prompt_version"]["propose"] == "self_instruct.propose@1"

    evol = stages["02-evol_instruct"]["metrics"]["evolutions"]
    assert [sum(v.values()) for v in evol.values()] == [12, 12]  # every lineage tried once per round

    data = pq.read_table(out / "data").to_pylist()
    assert data and all(r["messages"][0]["role"] == "user" for r in data)
    # The managed server is gone with the run.
    leftover = subprocess.run(["pgrep", "-f", str(tiny_model_dir)], capture_output=True, text=True).stdout.split()
    assert leftover == []
