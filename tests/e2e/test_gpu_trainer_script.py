"""benchmarks/gpu_trainer.sh in its CPU mode: the GPU run's whole path (the rows file, the model built from a
config, both trainers in their own processes, the figures and the JSON under $OUT) on a tiny model, so the one
run on a rented GPU works the first time.

The figures of a CPU trial say nothing about speed; what must hold is that both sides did the same work: the same
tokens and target tokens, the same number of timed steps, bf16 frozen weights with fp32 LoRA on both, and the
same step-1 loss (which the same rows, targets, loss normalisation and weights give).

benchmarks/gpu_session.sh, the one command of a GPU session (the GPU tests, then this benchmark), in its CPU
mode: the folder `prepare-data` makes holds what the tests read, the tests it selects are the GPU ones (here
collected and skipped), and the figures, logs and junit come back under $OUT.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_trainer.sh"
SESSION = ROOT / "benchmarks" / "gpu_session.sh"
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


def assert_same_work(result: dict, stdout: str) -> None:
    """Both trainers did the same work, and the figures are printed."""
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
        assert f"{phase}: ours/TRL tokens/s {ratios['speed']:.2f}x" in stdout
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


# The tests that need CUDA: the trainer's (issue 16) and the embeddings' (issue 21); gpu_session.sh must select
# every one of them.
GPU_TESTS = {"test_packed_equals_padded_on_gpu",
             "test_auto_on_a_gpu_loads_16_bit_weights_and_a_variable_length_kernel",
             "test_on_a_gpu_one_read_per_step_loss_scaling_and_mfu",
             "test_packed_and_padded_pairs_give_the_same_logps_and_losses",
             "test_a_pairs_logps_do_not_depend_on_the_pairs_packed_beside_it", "test_weights_digest_is_the_same_on_a_gpu",
             "test_auto_on_a_gpu_embeds_as_the_cpu_does_and_semdedup_removes_the_same_rows"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_gpu_session_cpu_mode_runs_the_gpu_tests_and_the_benchmark_from_the_carried_folder(tmp_path, shared_data):
    """The session's benchmark is `gpu_trainer.sh --cpu --tiny`: both trainers on the same work."""
    carried, out = tmp_path / "carried", tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_TRAINER_DIR": str(carried)}
    prepared = subprocess.run(["bash", str(SCRIPT), "prepare-data"], capture_output=True, text=True, cwd=ROOT,
                              env={**env, "PIPELINE_SHARED_DATA": str(shared_data)}, timeout=300)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert sorted(str(p.relative_to(carried)) for p in carried.rglob("*") if p.is_file()) == [
        "gpu_trainer_rows.json.gz", "shared-data/README.md", "shared-data/seeds/self_instruct/seed_tasks.jsonl"]

    out.mkdir()
    # The tests must read the carried copy, not the shared data this machine happens to have.
    env = {k: v for k, v in env.items() if k != "PIPELINE_SHARED_DATA"}
    done = subprocess.run(["bash", str(SESSION), "--cpu"], capture_output=True, text=True, cwd=ROOT, timeout=1150,
                          env={**env, "OUT": str(out), "GPU_SESSION_TIMEOUT_S": "1100"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    suite = ET.parse(out / "gpu_tests.xml").getroot().find("testsuite")
    assert suite.get("failures") == suite.get("errors") == "0"
    skipped = {case.get("name") for case in suite.iter("testcase") if case.find("skipped") is not None}
    assert {name.split("[")[0] for name in skipped} == GPU_TESTS
    for case in suite.iter("testcase"):
        if case.get("name") in skipped:
            assert case.find("skipped").get("message") == "needs a CUDA GPU"  # not a missing file or module
    assert_same_work(json.loads((out / "gpu_trainer.json").read_text()), done.stdout)
    summary = done.stdout[done.stdout.index("== gpu_session summary"):]
    assert f"0 failed, 0 errors, {len(skipped)} skipped" in summary and "benchmark: exit 0" in summary
    assert "sft: ours/TRL tokens/s" in summary and "dpo: ours/TRL tokens/s" in summary
    # What the device tool brings back: at most 8 plain files at the top of $OUT.
    assert sorted(p.name for p in out.iterdir()) == ["gpu_tests.log", "gpu_tests.xml", "gpu_trainer.json",
                                                     "gpu_trainer.log"]


def test_gpu_session_without_the_carried_data_says_how_to_make_it(tmp_path):
    done = subprocess.run(["bash", str(SESSION), "--cpu"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable, "GPU_TRAINER_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"gpu_session.sh: {tmp_path}/shared-data is missing: run 'benchmarks/gpu_trainer.sh prepare' here and carry "
        f"{tmp_path}"]
