"""configs/magpie.yaml end to end through `pipeline run`, against a real vLLM CPU server.

The pipeline starts the server (managed mode) with the seed-trained tiny teacher: Magpie's user
turns come from its completion endpoint given only the pre-query prefix cut from the model's own
template, the answers from its chat endpoint, and `respond` continues the seed rows with the
teacher playing the user. The test checks the conversations that came through, the reasons of
those that did not, and that the run's statistics and report show both stages' funnels.
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
MAGPIE_REASONS = {"empty_instruction", "instruction_truncated", "response_truncated", "empty_response", "llm_error", "template_unsplittable"}
RESPOND_REASONS = {"simulator_llm_error", "simulator_truncated", "empty_user_turn", "response_truncated", "empty_response", "llm_error"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _meta(row: dict) -> dict:
    return json.loads(row["meta"] or "{}")


def test_magpie_config_runs_end_to_end_on_vllm(tmp_path, shared_data, vllm_venv, trained_teacher):
    out = tmp_path / "out"
    overrides = {
        "input.paths": f"[{shared_data / 'seeds/self_instruct/seed_tasks.jsonl'}]", "input.limit": 4, "output.path": out,
        "llms.teacher.model": trained_teacher, "llms.teacher.cache_dir": "null",
        # The teacher never learned to write user turns, so it ends one within 256 tokens about three
        # times in four (measured): 16 conversations of two exchanges leave some to check.
        "stages.magpie.count": 16,
    }  # fmt: skip
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(ROOT / "configs/magpie.yaml"), "--quiet"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "PIPELINE_VLLM_VENV": str(vllm_venv)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]

    stats = json.loads((out / "stats.json").read_text())
    stages = {s["name"]: s for s in stats["stages"]}
    assert list(stages) == ["read", "magpie", "respond", "heuristics", "dedup"]
    for s in stats["stages"]:
        assert s["rows_in"] + s["added"] == s["kept"] + s["dropped"], s["id"]
    magpie, respond = stages["magpie"], stages["respond"]
    assert magpie["added"] == 16 and sum(magpie["metrics"]["outcomes"].values()) == 16
    assert set(magpie["dropped_by_reason"]) <= MAGPIE_REASONS
    assert magpie["metrics"]["outcomes"].get("kept", 0) == magpie["kept"] - magpie["rows_in"]

    kept = pq.read_table(out / "data").to_pylist()
    rejects = {s["id"]: pq.read_table(out / "rejects" / s["id"]).to_pylist() for s in stats["stages"] if s["dropped"]}
    model = str(trained_teacher)
    later = [r for sid, rows in rejects.items() if sid > magpie["id"] for r in rows]
    conversations = [r for r in kept + later if r["source"] == "magpie"]
    assert conversations, magpie["dropped_by_reason"]  # some of the teacher's sampled requests made it through
    for r in conversations:
        meta = _meta(r)
        assert r["generated_by"] == model and meta["responder"] == model and meta["turns"] == 2
        assert meta["prompt_version"]["query"] == "magpie.pre_query@1"
        turns = r["messages"][1:] if meta["system_prompt"] == 1 else r["messages"]
        assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant"]
        assert all(m["content"].strip() for m in turns)
    for r in rejects.get(magpie["id"], []):
        assert r["source"] == "magpie" and r["reason"] in MAGPIE_REASONS and _meta(r)["turns"] < 2

    # respond: the seeds (answered in the input) went on to two exchanges with a simulated user turn.
    seeds = [r for r in kept + [r for rows in rejects.values() for r in rows] if r["source"] == "seeds"]
    assert len(seeds) == 4
    for r in seeds:
        meta = _meta(r)
        assert meta["user_simulator"] == model and meta["prompt_version"]["simulate"] == "respond.user_simulator@1"
        if r.get("stage") == respond["id"]:
            assert r["reason"] in RESPOND_REASONS and meta["turns"] < 2
        elif r in kept:
            assert meta["turns"] == 2 and [m["role"] for m in r["messages"]] == ["user", "assistant"] * 2

    # The report shows both stages, with their funnels and the reasons they dropped rows for.
    report = (out / "report.html").read_text()
    for s in (magpie, respond):
        assert s["id"] in report
        for reason in s["dropped_by_reason"]:
            assert reason in report
