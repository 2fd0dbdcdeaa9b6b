"""benchmarks/gpu_trainer.sh in its CPU mode: the GPU run's whole path (the rows file, the model built from a
config, both trainers in their own processes, the figures and the JSON under $OUT) on a tiny model, so the one
run on a rented GPU works the first time.

The figures of a CPU trial say nothing about speed; what must hold is that both sides did the same work: the same
tokens and target tokens, the same number of timed steps, bf16 frozen weights with fp32 LoRA on both, and the
same step-1 loss (which the same rows, targets, loss normalisation and weights give).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_trainer.sh"
TINY_STEPS = {"sft": 6, "dpo": 4}  # gpu_trainer.TINY_SIZE


@pytest.fixture(scope="module")
def rows_dir(tmp_path_factory, shared_data):
    """What `gpu_trainer.sh prepare` carries to the GPU machine, less the wheels (those are for its Python 3.12)."""
    folder = tmp_path_factory.mktemp("gpu-trainer")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_trainer.py"), "--prepare",
                           str(folder / "gpu_trainer_rows.json.gz")], capture_output=True, text=True,
                          env={**os.environ, "PIPELINE_SHARED_DATA": str(shared_data)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def run_script(*args, rows_dir: Path, out: Path | None = None, timeout: float = 1100):
    # The script's own limit is sized for the GPU (8 minutes); four trainer processes on a busy CPU need more.
    env = {**os.environ, "PYTHON": sys.executable, "GPU_TRAINER_DIR": str(rows_dir),
           "GPU_TRAINER_TIMEOUT_S": str(int(timeout) - 20)}
    if out is not None:
        out.mkdir()
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cpu_trial_runs_both_trainers_on_the_same_work(rows_dir, tmp_path):
    done = run_script("--cpu", "--tiny", rows_dir=rows_dir, out=tmp_path / "out")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads((tmp_path / "out" / "gpu_trainer.json").read_text())
    for phase, steps in TINY_STEPS.items():
        ours, trl = result["phases"][phase]["ours"], result["phases"][phase]["trl"]
        assert ours["tokens"] == trl["tokens"] > 0
        assert ours["target_tokens"] == trl["target_tokens"] > 0
        for side in (ours, trl):
            assert side["steps"] == steps and len(side["losses"]) == steps
            assert side["base_dtype"] == "bfloat16" and side["lora_dtype"] == "float32"
            assert side["tokens_per_s"] > 0 and side["peak_memory_gib"] > 0
            assert all(math.isfinite(loss) for loss in side["losses"])
        assert math.isclose(ours["losses"][0], trl["losses"][0], rel_tol=1e-3), (ours["losses"], trl["losses"])
        ratios = result["phases"][phase]["ratios"]
        assert ratios["met"]["step1_loss"]
        assert f"{phase}: ours/TRL tokens/s {ratios['speed']:.2f}x" in done.stdout
    assert result["phases"]["dpo"]["ours"]["losses"][0] == pytest.approx(math.log(2), rel=1e-3)  # policy = reference


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_gpu_run_refuses_in_one_line(rows_dir):
    done = run_script(rows_dir=rows_dir, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["gpu_trainer: no CUDA GPU here: run on the GPU machine, or try "
                                                "the CPU mode with --cpu --tiny"]


def test_without_the_prepared_rows_the_script_says_how_to_make_them(tmp_path):
    done = run_script("--cpu", "--tiny", rows_dir=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"gpu_trainer.sh: {tmp_path}/gpu_trainer_rows.json.gz is missing: run 'benchmarks/gpu_trainer.sh prepare' "
        f"here and carry {tmp_path}"]
