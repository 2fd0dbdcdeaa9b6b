"""`pipeline finetune` and `pipeline train-classifier` with every path in object storage (a real S3 server).

The commands run as a user runs them, as subprocesses whose only route to the store is the S3 endpoint
and key pair in their environment. What they write to the store must be exactly what they write to
local disk from the same inputs: the same adapter weights, the same loss curves, the same model file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load

from pipeline import storage
from pipeline.train.data import hh_rlhf_rows, seed_task_chats
from pipeline.train.tracking import TIMING_KEYS
from tiny_models.llama import build_tiny_model
from tests.cli import PIPELINE, cli

SFT = {"max_steps": 12, "micro_batch_size": 2, "max_seq_len": 128, "learning_rate": 1e-2, "warmup_ratio": 0.0,
       "eval_fraction": 0.1, "eval_every": 4, "sample_every": 4, "sample_prompts": 1, "checkpoint_every": 2}
DPO = {"max_steps": 2, "micro_batch_size": 1, "max_seq_len": 128, "learning_rate": 1e-2, "warmup_ratio": 0.0,
       "eval_fraction": 0.1, "checkpoint_every": 1}


def tree(root: storage.Location) -> dict[str, bytes]:
    """Every file under `root` by relative path, TensorBoard's (named by host, pid and time) left out."""
    return {f.relative_to(root): f.read_bytes() for f in root.files() if "tensorboard" not in f.relative_to(root)}


@pytest.fixture(scope="module")
def sources(tmp_path_factory, shared_data):
    """A tiny model, and the files of a run directory as `pipeline run` leaves them."""
    chats = seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")
    root = tmp_path_factory.mktemp("train-s3")
    model = build_tiny_model(root / "model", [m["content"] for chat in chats for m in chat], vocab_size=2000)
    shard = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "messages": c} for i, c in enumerate(chats[:24])]), shard)
    prefs = hh_rlhf_rows(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", 12)
    finetune = {"sft": SFT, "dpo": DPO, "lora": {"dropout": 0.1}}  # dropout: each resumed RNG stream matters
    files = {
        "data/part-00000.parquet": shard.getvalue(),
        "preferences/pairs.jsonl.gz": gzip.compress("".join(json.dumps(r) + "\n" for r in prefs).encode()),
        "manifest.json": json.dumps({"name": "s3-run", "rows": 24, "config": {"finetune": finetune}}).encode(),
        "stats.json": json.dumps({"rows_out": 24, "stages": [{"id": "1-heuristics"}]}).encode(),
        "contamination_report.html": b"<html>no leaks</html>",
    }
    return model, files


@pytest.fixture(scope="module")
def on_disk(sources, tmp_path_factory):
    """The same fine-tune with everything on local disk, run straight through: what the store must match."""
    model, files = sources
    run = storage.locate(tmp_path_factory.mktemp("local-run"))
    for name, data in files.items():
        (run / name).write_bytes(data)
    proc = cli("finetune", run.path, "--model", model, "--dpo", "--merge")
    assert proc.returncode == 0, proc.stderr
    return run / "finetune"


def curve(logs: dict[str, bytes], name: str) -> list[dict]:
    """The logged metrics of every step, without the wall-clock figures."""
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in logs[name].splitlines()]


@pytest.mark.slow
def test_finetune_in_object_storage_resumes_after_a_kill_and_matches_local_disk(sources, on_disk, s3_bucket, object_store):
    model, files = sources
    bucket = storage.locate(s3_bucket)
    for name, data in files.items():
        (bucket / "run" / name).write_bytes(data)
    storage.locate(model).copy_to(bucket / "models" / "tiny")
    command = [*PIPELINE, "finetune", f"{s3_bucket}/run", "--model", f"{s3_bucket}/models/tiny", "--dpo", "--merge"]
    out = bucket / "run" / "finetune"

    # Killed once SFT has checkpointed in the store: nothing of the run is left on this machine but the store.
    proc = subprocess.Popen(command, env={**os.environ, **object_store.env()}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoints" / "sft-00000002" / "state.pt").exists():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the fine-tune must be killed mid-SFT"
    assert not (out / "adapter").exists()
    checkpointed = max(int(c.name.removeprefix("sft-")) for c in (out / "checkpoints").children() if c.name.startswith("sft-"))
    assert checkpointed < SFT["max_steps"]
    # The log in the store reaches at least the checkpoint: it is uploaded before each one.
    logged = (out / "logs" / "sft.jsonl").read_text().splitlines()[:checkpointed]
    assert [json.loads(line)["step"] for line in logged] == list(range(1, checkpointed + 1))

    resumed = subprocess.run(command, env={**os.environ, **object_store.env()}, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"adapter and model card in {s3_bucket}/run/finetune/adapter" in resumed.stdout

    remote, local = tree(out), tree(storage.locate(on_disk))
    assert sorted(remote) == sorted(local)  # adapter, sft_adapter, merged, tokenizer, logs, checkpoints
    assert any("tensorboard" in f.relative_to(out) for f in out.files())
    # Resumed, not started over: the steps up to the checkpoint are the killed run's own lines (their
    # measured tokens/s could not recur), and the whole curve is the uninterrupted one.
    assert remote["logs/sft.jsonl"].decode().splitlines()[:checkpointed] == logged
    for name in ("logs/sft.jsonl", "logs/dpo.jsonl"):
        assert curve(remote, name) == curve(local, name)
    for name in ("adapter/adapter_model.safetensors", "sft_adapter/adapter_model.safetensors", "merged/model.safetensors"):
        weights, expected = load(remote[name]), load(local[name])
        assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected), name

    card = remote["adapter/README.md"].decode()
    assert f"base_model: {s3_bucket}/models/tiny" in card and f"`{s3_bucket}/run`" in card
    assert f"`{s3_bucket}/run/data/part-00000.parquet`" in card and "preferences: 12 rows" in card
    assert f"({s3_bucket}/run/contamination_report.html)" in card and "s3-run" in card

    # A user serves it from the store: a local copy loads with peft onto the base.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with storage.local_copy(out / "adapter") as adapter:
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), adapter)


@pytest.fixture(scope="module")
def labelled(shared_data):
    """Science (positives, JSONL.gz) and sports (negatives, plain text) news from AG News."""
    import csv

    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    positives = gzip.compress("".join(json.dumps({"text": f"{t} {d}"}) + "\n" for c, t, d in rows if c == "4").encode())
    negatives = "".join(f"{t} {d}".replace("\n", " ") + "\n" for c, t, d in rows if c == "2").encode()
    return {"sci.jsonl.gz": positives, "sports.txt": negatives}


def test_train_classifier_reads_and_writes_object_storage(labelled, s3_bucket, object_store, tmp_path):
    from filters.fasttext_classifier import FastTextClassifier

    def train(root: storage.Location) -> subprocess.CompletedProcess:
        for name, data in labelled.items():
            (root / "in" / name).write_bytes(data)
        return cli("train-classifier", "--positives", root / "in" / "sci.jsonl.gz", "--negatives", root / "in" / "sports.txt",
                   "-o", root / "models" / "quality.bin", "--bucket", "100000", "--threads", "1", env={**os.environ, **object_store.env()})

    remote, local = storage.locate(s3_bucket), storage.locate(tmp_path)
    proc = train(remote)
    assert proc.returncode == 0, proc.stderr
    assert f"model: {s3_bucket}/models/quality.bin" in proc.stdout
    assert train(local).returncode == 0

    # One thread and one seed: the model trained from the store is byte for byte the one trained from disk.
    model = remote / "models" / "quality.bin"
    assert model.read_bytes() == (local / "models" / "quality.bin").read_bytes()
    metrics = json.loads((remote / "models" / "quality.bin.metrics.json").read_text())
    expected = json.loads((local / "models" / "quality.bin.metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k != "train_seconds"} == {k: v for k, v in expected.items() if k != "train_seconds"}
    assert metrics["labels"] == ["cc", "hq"] and metrics["auc"] > 0.9

    # The `quality` stage reads its model through a local copy: the model in the store scores text.
    with storage.local_copy(model) as path:
        classifier = FastTextClassifier(path)
    assert classifier.score(["NASA launches a new space telescope to study distant galaxies"], "hq")[0] > 0.5
    assert classifier.score(["The striker scored twice as the home team won the championship"], "hq")[0] < 0.5
