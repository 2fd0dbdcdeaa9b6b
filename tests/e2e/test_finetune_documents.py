"""`pipeline finetune` on a web-curation run's output: its documents trained with the language-modelling
objective, alone and mixed with instruction rows at a token ratio, split by lineage, named in the card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from transformers import AutoTokenizer

from pipeline.train.data import ChatEncoder, seed_task_chats
from tests.cli import cli
from tiny_models.llama import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SFT = ["--batch-size", "4", "--grad-accum", "1", "--max-seq-len", "128", "--set", "sft.warmup_ratio=0",
       "--set", "sft.sample_prompts=0", "--set", "sft.max_grad_norm=null"]


@pytest.fixture(scope="module")
def web_run(tmp_path_factory):
    """A real web-curation run over the quickstart crawl; its reweight stage copies every document about twice."""
    root = tmp_path_factory.mktemp("web")
    config = {
        "name": "web-docs",
        "input": {"format": "warc", "paths": [str(ROOT / "configs" / "quickstart" / "crawl.warc.gz")], "name": "web"},
        "output": {"path": str(root / "run"), "formats": ["parquet"]},
        "stages": [
            {"extract": {"engine": "trafilatura", "timeout_s": 5}},
            {"language": {"keep": ["en"], "min_score": 0.65}},
            {"heuristics": {"rules": ["gopher_repetition", "gopher_quality"]}},
            {"dedup": {"method": "minhash", "threshold": 0.7, "bands": None, "rows": None}},
            {"reweight": {"by": "source", "weights": {"web": 1}, "budget": 4000, "max_copies": 3}},
        ],
    }
    (root / "web.yaml").write_text(yaml.safe_dump(config))
    done = cli("run", root / "web.yaml")
    assert done.returncode == 0, done.stderr
    return root / "run"


@pytest.fixture(scope="module")
def documents(web_run) -> list[dict]:
    rows = pq.read_table(web_run / "data").to_pylist()
    assert rows and all(r["text"] and "messages" not in r for r in rows)
    assert len({r["origin_id"] for r in rows}) < len(rows)  # reweight made copies: families of more than one row
    return rows


@pytest.fixture(scope="module")
def model(tmp_path_factory, shared_data, documents) -> Path:
    chats = seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")
    texts = [m["content"] for chat in chats for m in chat] + [r["text"] for r in documents]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=2000)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "logs" / "sft.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_curation_runs_documents_train_with_the_language_modelling_objective(web_run, documents, model, tmp_path):
    out = tmp_path / "docs"
    # Full fine-tuning: LoRA on a random-weight model barely moves in a few steps, whatever the data.
    done = cli("finetune", web_run, "--model", model, "--out", out, "--method", "full", "--max-steps", "8", *SFT,
               "--lr", "3e-3", "--set", "sft.schedule=constant", "--set", "sft.eval_fraction=0.25", "--set", "sft.eval_every=4")
    assert done.returncode == 0, done.stderr
    log = _log(out)
    assert len(log) == 8 and log[-1]["loss"] < log[0]["loss"] - 0.5  # it learns the documents
    assert log[-1]["eval_loss"] < log[3]["eval_loss"] < log[0]["loss"]  # and held-out documents with them

    card = (out / "adapter" / "README.md").read_text()
    origins = len({r["origin_id"] for r in documents})
    assert f"documents: {len(documents)} rows from 1 files" in card
    assert "language modelling (every token of a document is a target)" in card
    assert str(web_run / "data") in card and "web-docs" in card  # the files and the run's manifest
    line = next(x for x in card.splitlines() if "held out by lineage" in x)
    train_families, held_families = (int(x.split()[0]) for x in line.split(":")[1].split(",")[:2])
    assert train_families + held_families == origins and held_families >= 1  # copies of a document never split
    tracking = card.split("## Run tracking")[1]
    assert re.search(r"\n- sft: wall time [\d.,]+ s, [\d,]+ tokens/s, peak memory [\d,]+ MiB\n", tracking)  # no MFU on CPU


@pytest.mark.slow
def test_documents_mixed_with_instructions_at_a_token_ratio(web_run, model, shared_data, tmp_path):
    chats = seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")[:40]
    instructions = tmp_path / "chats.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "messages": c} for i, c in enumerate(chats)]), instructions)
    out = tmp_path / "mixed"
    done = cli("finetune", web_run, "--model", model, "--out", out, "--data", instructions, "--epochs", "1", "--lr", "1e-2", *SFT,
               "--set", "sft.eval_fraction=0", "--set", f"documents=[{web_run / 'data'}]",
               "--set", "document_token_ratio=0.3")
    assert done.returncode == 0, done.stderr

    # One epoch reads every training example once: the logged target tokens are the instructions' plus the documents'.
    encoder = ChatEncoder(AutoTokenizer.from_pretrained(model), 128)
    instruction_tokens = sum(encoder.encode(c).n_targets for c in chats)
    trained = sum(r["target_tokens"] for r in _log(out))
    assert (trained - instruction_tokens) / trained == pytest.approx(0.3, abs=0.005)

    card = (out / "adapter" / "README.md").read_text()
    assert "instructions: 40 rows" in card and "documents are 30.0% of the SFT target tokens" in card
    assert f"`{instructions}`" in card and "language modelling" in card


def test_a_documents_file_without_text_is_one_line_exit_2(shared_data, tmp_path):
    chats = seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")[:8]
    tiny = build_tiny_model(tmp_path / "model", [m["content"] for chat in chats for m in chat], vocab_size=500)
    (tmp_path / "run" / "data").mkdir(parents=True)
    instructions = tmp_path / "run" / "data" / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "messages": c} for i, c in enumerate(chats)]), instructions)
    done = cli("finetune", tmp_path / "run", "--model", tiny, "--set", f"documents=[{instructions}]")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: documents: {instructions} has no 'text' column "
                                                 "(expected document rows, such as a web-curation run's data/*.parquet)"]
