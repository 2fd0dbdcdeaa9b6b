"""configs/synthetic.yaml end to end through `pipeline run`, against a real vLLM CPU server.

The pipeline starts the server itself (managed mode) and stops it at the end. It serves the tiny
local Llama trained on our prompts answered from the seed tasks (`make_tiny_model.py
--train-on-seeds`, cached in models/ so a test session trains it at most once): its text is
word-like and ends with EOS, so the real rules accept some proposals and evolutions and reject
others, and the test checks what was accepted, with its provenance, and that every row is
accounted for.
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
OPERATIONS = {"add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth"}

# Training the model (first use only), starting vLLM on 2 busy cores and seven Ray stages take minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _meta(row: dict) -> dict:
    return json.loads(row["meta"] or "{}")


def test_synthetic_config_runs_end_to_end_on_vllm(tmp_path, shared_data, vllm_venv, trained_teacher):
    out = tmp_path / "out"
    seeds = shared_data / "seeds/self_instruct/seed_tasks.jsonl"
    overrides = {
        "input.paths": f"[{seeds}]", "input.limit": 12, "output.path": out,
        "llms.teacher.model": trained_teacher, "llms.teacher.cache_dir": "null",
        "stages.self_instruct.target": 6, "stages.self_instruct.requests_per_round": 8,
        "stages.self_instruct.max_stale_rounds": 2, "stages.self_instruct.max_tokens": 128,
        "stages.self_instruct.instance_max_tokens": 96, "stages.evol_instruct.rounds": 2,
        "stages.evol_instruct.max_tokens": 96, "stages.evol_instruct.response_max_tokens": 128,
        "stages.respond.max_tokens": 128, "stages.respond.overwrite": "true",
        "stages.decontaminate.benchmarks_dir": shared_data / "benchmarks", "stages.decontaminate.benchmarks": "[gsm8k]",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(ROOT / "configs/synthetic.yaml"), "--quiet"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]

    stats = json.loads((out / "stats.json").read_text())
    stages = {s["name"]: s for s in stats["stages"]}
    assert list(stages) == ["read", "self_instruct", "evol_instruct", "respond", "heuristics", "dedup", "decontaminate"]
    for s in stats["stages"]:  # every row in (or made) is kept or dropped with a reason
        assert s["rows_in"] + s["added"] == s["kept"] + s["dropped"], s["id"]
        assert sum(s["dropped_by_reason"].values()) == s["dropped"], s["id"]
    kept = pq.read_table(out / "data").to_pylist()
    rejects = {s["id"]: pq.read_table(out / "rejects" / s["id"]).to_pylist() for s in stats["stages"] if s["dropped"]}
    model = str(trained_teacher)

    # Self-Instruct: some proposals joined the pool and became rows with an instance; every dropped
    # proposal is a reject with its reason.
    si = stages["self_instruct"]
    metrics = si["metrics"]
    assert metrics["seeds"] == 12 and metrics["requests"] >= metrics["rounds"] * 8
    assert metrics["pooled"] >= 1, metrics["proposal_drops"]
    si_rejects = [r for r in rejects.get(si["id"], []) if r["source"] == "self_instruct"]
    assert sum(metrics["proposal_drops"].values()) == len(si_rejects)
    later = [r for sid, rows in rejects.items() if sid > si["id"] for r in rows]
    generated = [r for r in kept + later if r["source"] == "self_instruct" and _meta(r)["stage"] == "self_instruct"]
    assert generated, "accepted proposals must reach the stages after self_instruct"
    assert si["added"] == len(generated) + len(si_rejects)
    for r in generated + si_rejects:
        assert r["generated_by"] == model
        assert _meta(r)["prompt_version"]["propose"] == "self_instruct.propose@1"
    for r in generated:
        assert _meta(r)["prompt_version"]["instances"].startswith("self_instruct.instances_")
        assert r["messages"][0]["content"].startswith(_meta(r)["instruction"])

    # Evol-Instruct: every lineage tried once per round; successes carry parent, operation and round.
    evol = stages["evol_instruct"]
    assert [sum(v.values()) for v in evol["metrics"]["evolutions"].values()] == [evol["rows_in"]] * 2
    fates = [(r, None) for r in kept] + [(r, sid) for sid, rows in rejects.items() for r in rows]
    attempts = [(r, sid) for r, sid in fates if _meta(r).get("stage") == "evol_instruct"]
    assert len(attempts) == evol["added"]
    evolved = [r for r, sid in attempts if sid is None or sid > evol["id"]]  # survived the elimination rules
    assert evolved, evol["metrics"]["evolutions"]
    ids = {r["id"] for r, _ in attempts}
    for r in evolved:
        meta = _meta(r)
        assert meta["operation"] in OPERATIONS and meta["round"] in (1, 2)
        assert r["id"] == f"{meta['root_id']}.e{meta['round']}"
        # A round-2 evolution grows from its round-1 success, or from the root when round 1 failed.
        assert r["parent_id"] == meta["root_id"] or (r["parent_id"] in ids and r["parent_id"].endswith(".e1"))
        assert meta["prompt_version"]["evolve"].startswith("evol_instruct.") and r["generated_by"] == model

    # respond (overwrite: true): every kept row ends with a fresh, non-empty answer from the model.
    assert kept
    for r in kept:
        assert r["messages"][0]["role"] == "user" and r["messages"][-1]["role"] == "assistant"
        assert r["messages"][-1]["content"].strip()
        assert _meta(r)["prompt_version"]["respond"] == "respond@1" and _meta(r)["responder"] == model

    # The managed server is gone with the run.
    leftover = subprocess.run(["pgrep", "-f", str(trained_teacher)], capture_output=True, text=True).stdout.split()
    assert leftover == []
