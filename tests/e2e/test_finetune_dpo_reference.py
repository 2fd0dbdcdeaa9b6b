"""`pipeline finetune --dpo` computes the reference log-probs once: the next run over the same SFT model and
pairs reads them from the output and reaches the same DPO loss; a change to what decides them recomputes.

After SFT the reference is the SFT model (`reference: auto` precomputes it), so this also checks that the
SFT adapter a re-run trains again is recognised as the same, and that another one is not.
"""

import json

import pytest

from pipeline.train.reference_cache import FILE
from tests.cli import cli
from tests.e2e.finetune_run import make_run

SFT = {"max_steps": 2, "micro_batch_size": 4, "grad_accum": 1, "max_seq_len": 128, "learning_rate": 1e-2,
       "sample_prompts": 0}
DPO = {"max_steps": 1, "micro_batch_size": 3, "grad_accum": 1, "max_seq_len": 384, "eval_fraction": 0.2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data):
    """A run directory with instruction and preference shards, and a tiny model built from the same texts."""
    return make_run(tmp_path_factory.mktemp("dpo-reference"), shared_data, "dpo-reference", 16, 10, {"sft": SFT, "dpo": DPO})


def finetune(run_dir, *args) -> tuple[str, float]:
    """`pipeline finetune RUN --dpo ARGS` into RUN/finetune: its stderr and the DPO loss at step 1."""
    proc = cli("finetune", run_dir, "--dpo", "--no-resume", *args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    step1 = json.loads((run_dir / "finetune" / "logs" / "dpo.jsonl").read_text().splitlines()[0])
    assert step1["step"] == 1
    return proc.stderr, step1["loss"]


@pytest.mark.slow
def test_finetune_reads_the_dpo_references_back_until_what_decides_them_changes(run_dir):
    cache = run_dir / "finetune" / FILE
    err, loss = finetune(run_dir)
    assert f"DPO reference log-probs computed for 8 pairs (+2 held out) (none cached), kept in {cache}" in err
    stored = cache.read_bytes()

    err, again = finetune(run_dir)
    assert f"DPO reference log-probs of 8 pairs (+2 held out) read from {cache}" in err and "computed" not in err
    assert cache.read_bytes() == stored  # read, not written again
    assert again == loss  # the same SFT model and references: the same step-1 loss, bit for bit

    err, _ = finetune(run_dir, "--lr", "5e-3")  # another SFT adapter, so another reference model
    assert "computed for 8 pairs (+2 held out) (adapter changed)" in err
