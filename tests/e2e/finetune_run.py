"""A pipeline run's output as `pipeline finetune` reads it, built small for the trainer's end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.train.data import hh_rlhf_rows, seed_task_chats
from tiny_models.llama import build_tiny_model


def make_run(root: Path, shared_data: Path, name: str, chats: int, pairs: int, finetune: dict) -> Path:
    """RUN/data (seed-task chats), RUN/preferences (HH-RLHF pairs) and a manifest whose finetune section
    names a tiny model built from the same texts."""
    seed_chats = seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")
    model = build_tiny_model(root / "model", [m["content"] for chat in seed_chats for m in chat], vocab_size=2000)
    run = root / "run"
    (run / "data").mkdir(parents=True)
    (run / "preferences").mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "messages": c} for i, c in enumerate(seed_chats[:chats])]),
                   run / "data" / "part-00000.parquet")
    prefs = hh_rlhf_rows(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", pairs)
    (run / "preferences" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    (run / "manifest.json").write_text(json.dumps({"name": name, "rows": chats,
                                                   "config": {"finetune": {"model": str(model), **finetune}}}))
    return run
