"""The divergence guard, and `pipeline finetune` in one process: exit 1 on a diverged run with the last good
checkpoint kept and resumable, and no Ray on the single-process path."""

import json
import math
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import storage
from pipeline.errors import RunFailed
from pipeline.train.data import hh_rlhf_rows
from pipeline.train.tracking import COLLAPSE_LOSS, COLLAPSE_STEPS, DivergenceGuard
from tests.cli import cli

QUIET_SFT = ["--set", "sft.eval_fraction=0", "--set", "sft.sample_prompts=0", "--set", "sft.schedule=constant",
             "--max-seq-len", "128", "--batch-size", "4", "--grad-accum", "1"]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_guard_stops_on_non_finite_values_and_a_collapsed_loss(tmp_path):
    checkpoints = storage.locate(tmp_path / "checkpoints")
    guard = DivergenceGuard("sft", checkpoints, check_collapse=True, loss_scaling=False)
    guard.check(1, 2.5, 0.7)
    with pytest.raises(RunFailed, match=r"^sft diverged at step 2: loss nan; no good sft checkpoint was written before it"):
        guard.check(2, math.nan, 0.7)
    with pytest.raises(RunFailed, match=r"at step 3: loss inf"):
        guard.check(3, math.inf, 0.7)
    with pytest.raises(RunFailed, match=r"at step 4: gradient norm nan \(loss 2\.5\)"):
        guard.check(4, 2.5, math.nan)

    (checkpoints / "sft-00000004" / "state.pt").write_bytes(b"x")
    collapsing = DivergenceGuard("sft", checkpoints, check_collapse=True, loss_scaling=False)
    low = COLLAPSE_LOSS / 2
    for step in range(1, COLLAPSE_STEPS):  # in a row, but not yet enough
        collapsing.check(step, low, 0.1)
    collapsing.check(COLLAPSE_STEPS, 0.5, 0.1)  # a normal loss starts the count again
    for step in range(COLLAPSE_STEPS + 1, 2 * COLLAPSE_STEPS):
        collapsing.check(step, low, 0.1)
    with pytest.raises(RunFailed, match=rf"at step {2 * COLLAPSE_STEPS}: loss collapsed to 5e-05 .*the last good "
                                        r"checkpoint, .*sft-00000004, is kept"):
        collapsing.check(2 * COLLAPSE_STEPS, low, 0.1)

    # fp16: a non-finite gradient norm is an overflow the loss scaler skipped; hinge/IPO losses reach 0 by design.
    lenient = DivergenceGuard("dpo", checkpoints, check_collapse=False, loss_scaling=True)
    for step in range(1, 2 * COLLAPSE_STEPS):
        lenient.check(step, 0.0, math.inf)
    with pytest.raises(RunFailed, match="^dpo diverged at step 9: loss nan"):
        lenient.check(9, math.nan, 1.0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, seed_chats, shared_data):
    run = tmp_path_factory.mktemp("run")
    (run / "data").mkdir()
    (run / "preferences").mkdir()
    rows = [{"id": str(i), "messages": chat} for i, chat in enumerate(seed_chats[:24])]
    pq.write_table(pa.Table.from_pylist(rows), run / "data" / "part-00000.parquet")
    prefs = hh_rlhf_rows(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", 8)
    (run / "preferences" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    return run


@pytest.mark.slow
def test_a_diverging_finetune_exits_1_keeps_the_last_good_checkpoint_and_resumes(run_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "finetune"
    # Warmup from 0 over two steps to 1e30, no clipping: step 1 changes nothing, step 2 moves the adapter to
    # ~1e30, and step 3's loss, the first of those weights, is NaN.
    diverge = ["--lr", "1e30", "--set", "sft.warmup_ratio=0.5", "--set", "sft.max_grad_norm=null"]
    proc = cli("finetune", run_dir, "--model", tiny_model_dir, "--out", out, "--max-steps", 4,
               "--set", "sft.checkpoint_every=1", *QUIET_SFT, *diverge)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == [
        "error: sft diverged at step 3: loss nan; the checkpoint of step 2, which holds those weights, is removed; "
        f"the last good checkpoint, {out / 'checkpoints' / 'sft-00000001'}, is kept: resume from it with a lower "
        "sft.learning_rate"]
    # The diverged state is in no checkpoint, and no adapter was written.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["sft-00000001"]
    assert not (out / "adapter").exists()
    diverged = [json.loads(line) for line in (out / "logs" / "sft.jsonl").read_text().splitlines()]
    assert [r["step"] for r in diverged] == [1, 2, 3] and math.isnan(diverged[2]["loss"])
    assert all(math.isfinite(r["loss"]) for r in diverged[:2])

    # The kept checkpoint resumes with a sane learning rate (this run's, not the checkpoint's) and finishes.
    proc = cli("finetune", run_dir, "--model", tiny_model_dir, "--out", out, "--max-steps", 4, "--lr", "1e-3",
               "--set", "sft.checkpoint_every=1", "--set", "sft.warmup_ratio=0.5", *QUIET_SFT)
    assert proc.returncode == 0, proc.stderr
    resumed = [json.loads(line) for line in (out / "logs" / "sft.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert resumed[0] == diverged[0]  # step 1 is the diverged run's, kept with its checkpoint
    assert [r["lr"] for r in resumed[1:]] == [5e-4, 1e-3, 1e-3]
    assert all(math.isfinite(r["loss"]) for r in resumed)
    assert (out / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_single_process_finetune_never_imports_ray(run_dir, tiny_model_dir, tmp_path):
    """Ray takes seconds to import and is needed only for several workers (Ray Train)."""
    args = ["finetune", str(run_dir), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out"), "--dpo",
            "--max-steps", "1", "--dpo-steps", "1", "--set", "dpo.max_seq_len=128", *QUIET_SFT]
    script = ("import json, sys\nfrom pipeline.cli import main\ncode = main(sys.argv[1:])\n"
              "print(json.dumps({'code': code, 'ray': sorted(m for m in sys.modules if m.split('.')[0] == 'ray')}))")
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"code": 0, "ray": []}
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()
