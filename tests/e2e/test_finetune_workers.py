"""`pipeline finetune --workers 2`: Ray Train runs the same SFT and DPO as one process, on CPU with gloo.

Two workers with accumulation A read, per optimizer step, the same examples as one worker with
accumulation 2A; the loss is normalised by the target tokens of the whole step summed over both
workers, so the per-step losses, the metrics and the final adapter must match the single-process run
up to float summation order. A per-worker normalisation, or workers reading the same examples, changes the curve.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.train.config import FinetuneConfig
from pipeline.train.run import finetune
from pipeline.train.tracking import TIMING_KEYS
from tests.e2e.finetune_run import make_run
from tests.cli import cli

SFT = {"max_steps": 3, "micro_batch_size": 2, "max_seq_len": 128, "learning_rate": 1e-2, "warmup_ratio": 0.0,
       "eval_fraction": 0.1, "sample_every": 2, "sample_prompts": 1, "checkpoint_every": 1}
DPO = {"enabled": True, "max_steps": 2, "micro_batch_size": 1, "max_seq_len": 128, "learning_rate": 1e-2,
       "warmup_ratio": 0.0, "eval_fraction": 0.1, "checkpoint_every": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data):
    """A run directory with instruction and preference shards, and a tiny model built from the same texts."""
    return make_run(tmp_path_factory.mktemp("workers"), shared_data, "workers-run", 24, 12, {"sft": SFT, "dpo": DPO})


def logs(out, name):
    return [json.loads(line) for line in (out / "logs" / name).read_text().splitlines()]


def files(out):
    """Every file the run wrote, by relative path; TensorBoard event files by count (their names hold pid and time)."""
    paths = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and "ray" not in p.relative_to(out).parts)
    return [p for p in paths if "tensorboard" not in p], sum("tensorboard" in p for p in paths)


@pytest.mark.slow
def test_two_workers_train_exactly_like_one_with_the_same_global_batch(run_dir, ray_session, monkeypatch):
    manifest = json.loads((run_dir / "manifest.json").read_text())["config"]["finetune"]
    single = FinetuneConfig.model_validate({**manifest, "sft": {**SFT, "grad_accum": 2},
                                            "dpo": {**DPO, "grad_accum": 2}, "output": str(run_dir / "one")})
    one = finetune(single, run_dir).local_path()

    monkeypatch.chdir(run_dir)  # relative paths, as typed: Ray Train runs the workers in another directory
    assert main(["finetune", ".", "--workers", "2", "--grad-accum", "1", "--set", "dpo.grad_accum=1",
                 "--out", "two"]) == 0
    two = run_dir / "two"

    for name, keys in (("sft.jsonl", ["loss", "eval_loss"]), ("dpo.jsonl", ["loss", "margin", "chosen_logps", "eval_loss"])):
        a, b = logs(one, name), logs(two, name)
        assert [r["step"] for r in b] == [r["step"] for r in a] == list(range(1, len(a) + 1))
        for ra, rb in zip(a, b):
            for key in keys:
                # The weights' tolerance, for the reason given below; after a DPO step the log-probs (about
                # -100) differ by 1e-5 of themselves, so a margin, a difference of them, by up to 1e-4. A wrong
                # batch moves these by percents.
                if key in ra:
                    assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-4), (name, ra["step"], key)
    # Every worker's targets count: the step's target tokens are those of the whole global batch.
    assert [r["target_tokens"] for r in logs(two, "sft.jsonl")] == [r["target_tokens"] for r in logs(one, "sft.jsonl")]
    assert logs(one, "sft.jsonl")[1]["loss"] != logs(one, "sft.jsonl")[0]["loss"]  # training moved the model

    weights_one = load_file(one / "adapter" / "adapter_model.safetensors")
    weights_two = load_file(two / "adapter" / "adapter_model.safetensors")
    assert weights_two.keys() == weights_one.keys()
    # AdamW's first steps move each weight by about the learning rate in its gradient's sign, so where
    # a gradient is near zero, float summation order (gloo's all-reduce against one process's sum)
    # can flip a weight's update. One process with the same global batch in other micro batches does
    # the same (up to 4e-4 on 3 weights of 2,048). Measured after 3 SFT and 2 DPO steps at lr 1e-2:
    # two workers against one, at most 1% of a tensor's weights differ by more than 1e-4 (1% of a
    # step), a few of them by two steps, from run to run; another seed's batches, 99.4% at least.
    for name in weights_one:
        moved = ((weights_two[name] - weights_one[name]).abs() > 1e-4).float().mean()
        assert moved < 0.05, (name, moved)

    # Rank 0 alone writes: the same files as the single process, each once, and one log line per step.
    assert files(two) == files(one)
    assert [r["step"] for r in logs(two, "sft_samples.jsonl")] == [r["step"] for r in logs(one, "sft_samples.jsonl")]
    card = (two / "adapter" / "README.md").read_text()
    assert "workers-run" in card and '"num_workers": 2' in card


def curve(out, name):
    """The logged metrics of every step, without the wall-clock figures."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in logs(out, name)]


@pytest.mark.slow
def test_two_workers_resume_the_identical_curve(run_dir, ray_session, capsys):
    out = run_dir / "resumed"
    # With dropout each worker draws its own masks, so each must get its own RNG streams back.
    command = ["finetune", str(run_dir), "--workers", "2", "--grad-accum", "1", "--set", "dpo.grad_accum=1",
               "--out", str(out), "--set", "lora.dropout=0.1"]
    # As a user runs it, with a Ray of its own: the console says where training stands, each line once
    # (Ray Train's print in the workers printed everything twice), and none of Ray's own lines.
    done = cli(*command, timeout=600)
    assert done.returncode == 0, done.stderr
    console = done.stderr.splitlines()
    assert console[0] == "starting a local Ray" and all(line.startswith("finetune: ") for line in console[1:]), console
    assert done.stdout.startswith("finetune: adapter and model card in ")
    steps = [line.split(":")[1].strip() for line in console if re.match(r"finetune: (sft|dpo) step", line)]
    assert steps == ["sft step 1/3", "sft step 3/3", "dpo step 1/2", "dpo step 2/2"], console  # first, evaluated, last
    assert (out / "ray" / "console.log").read_text().count("Started training worker group") == 1  # Ray's lines: in the log
    straight = {name: curve(out, name) for name in ("sft.jsonl", "dpo.jsonl")}
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")

    # As if the job died after SFT step 2: the later SFT checkpoint and all of DPO's are gone.
    for checkpoint in [out / "checkpoints" / "sft-00000003", *(out / "checkpoints").glob("dpo-*")]:
        shutil.rmtree(checkpoint)
    assert main(command) == 0
    assert {name: curve(out, name) for name in straight} == straight
    resumed = load_file(out / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(resumed[name], adapter[name]) for name in adapter)

    # Another layout would read other examples at the same step: the checkpoint is refused, not resumed,
    # with the workers' one-line error, whether the run has one worker or two.
    manifest = json.loads((run_dir / "manifest.json").read_text())["config"]["finetune"]
    with pytest.raises(UserError, match="workers 2, grad_accum 1, micro_batch_size 2, this run has workers 1"):
        finetune(FinetuneConfig.model_validate({**manifest, "output": str(out)}), run_dir)
    capsys.readouterr()
    assert main([*command[:4], "--grad-accum", "2", *command[6:]]) == 2
    assert "this run has workers 2, grad_accum 2" in capsys.readouterr().err


def test_more_workers_than_the_cluster_holds_are_one_line_not_a_wait_forever(run_dir, ray_session, capsys):
    """Before, Ray Train waited for the workers' resources, printing a traceback a minute, until killed;
    and one worker with --gpu on a machine without CUDA trained on the CPU without a word."""
    import ray

    if not torch.cuda.is_available():
        assert main(["finetune", str(run_dir), "--gpu", "--out", str(run_dir / "never")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --gpu: torch {torch.__version__} sees no CUDA GPU here (") and err.count("\n") == 1

    cpus = int(sum(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]))
    gpus = int(sum(node["Resources"].get("GPU", 0) for node in ray.nodes() if node["Alive"]))
    for flags, said in (([str(cpus + 1)], f"finetune: --workers {cpus + 1} asks for {cpus + 1} workers of 1 CPU each, "
                                          f"and the Ray cluster's nodes hold {cpus} at once"),
                        ([str(gpus + 2), "--gpu"], f"finetune: --workers {gpus + 2} --gpu asks for")):
        capsys.readouterr()
        assert main(["finetune", str(run_dir), "--workers", *flags, "--out", str(run_dir / "never")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}") and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_ctrl_c_stops_two_workers_like_one_process(run_dir, tmp_path):
    """Ray Train takes SIGINT over inside `fit` when it runs in the main thread: Ctrl-C aborted the run and
    the process exited with status 1, saying nothing. Now it is "interrupted" with exit 130, Ray gone."""
    import psutil

    console = tmp_path / "console.txt"
    with open(console, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "finetune", str(run_dir), "--workers", "2",
                                 "--out", str(tmp_path / "stopped"), "--set", "sft.max_steps=1000"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while "sft step 1/1000" not in console.read_text():  # training, on both workers
            assert proc.poll() is None and time.time() < deadline, console.read_text()
            time.sleep(0.5)
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130, console.read_text()
        assert console.read_text().splitlines()[-1] == "interrupted: the same command resumes from the last checkpoint"
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, alive  # Ray and its workers stopped with the command
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
