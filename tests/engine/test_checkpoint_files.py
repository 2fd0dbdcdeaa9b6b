"""Checkpoints in few large files, read back in blocks that keep every worker of the next pass busy.

One file per batch is tens of millions of objects at the size of a Common Crawl snapshot; few
large files read by Ray as they are would give the next pass one block, one worker, per file.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import checkpoint, storage
from pipeline.config import load_run
from pipeline.runner import run


def pid_tagger():
    """A map function that adds the process that worked on a batch; the sleep is work long enough for
    both workers to take some. Made here so that Ray ships it by value (workers cannot import tests)."""

    def tagged(batch: pa.Table) -> pa.Table:
        time.sleep(0.05)
        return batch.append_column("pid", pa.array([os.getpid()] * batch.num_rows, pa.int64()))

    return tagged


def parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def test_block_rows_give_every_cpu_blocks_and_read_footers_only_until_they_do(tmp_path):
    small = tmp_path / "small.parquet"
    pq.write_table(pa.table({"id": range(990)}), small)
    assert checkpoint.block_rows([storage.locate(small)], cpus=2) == 124  # 990 rows / (4 blocks x 2 CPUs)
    assert checkpoint.block_rows([storage.locate(small)], cpus=16) == 16
    big = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": range(9_000)}), big)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")  # a footer that cannot be read: block_rows must stop before it
    assert checkpoint.block_rows([storage.locate(big), storage.locate(junk)], cpus=2) == checkpoint.BLOCK_ROWS


def test_a_pass_writes_one_file_and_both_passes_run_on_every_worker(ray_session, tmp_path):
    """3,000 rows in 40 blocks, worked on in batches of 64 as a stage does: one file, not 40; the
    pass that writes it and the pass that reads it back each run on both workers of the 2-CPU Ray."""
    import ray.data

    ckpts = checkpoint.Checkpoints(tmp_path / "out")
    rows = ray.data.from_items([{"id": i, "text": "x" * 3_000} for i in range(3_000)], override_num_blocks=40)
    attempt = ckpts.write("01-x", rows.map_batches(pid_tagger(), batch_size=64, batch_format="pyarrow"))
    files = parquet_files(Path(attempt.path))
    assert len(files) == 1, [f.name for f in files]
    written = pq.read_table(files[0])
    assert len(set(written.column("pid").to_pylist())) == 2, "the writing pass ran on one worker"

    read = checkpoint.read_attempt(attempt).drop_columns(["pid"])
    again = read.map_batches(pid_tagger(), batch_size=64, batch_format="pyarrow").select_columns(["id", "pid"]).take_all()
    assert sorted(r["id"] for r in again) == list(range(3_000))
    assert len({r["pid"] for r in again}) == 2, "the next pass ran on one worker"


def make_inputs(folder: Path, files: int = 30, per_file: int = 100) -> None:
    """Rows of i % 25 words in many small files, so the first pass gets many blocks; one line is not JSON."""
    folder.mkdir()
    for k in range(files):
        with gzip.open(folder / f"in-{k:02d}.jsonl.gz", "wt") as f:
            for i in range(k * per_file, (k + 1) * per_file):
                f.write(json.dumps({"text": " ".join(f"w{j}" for j in range(i % 25)), "url": f"https://s.example/{i}"}) + "\n")
            if k == 0:
                f.write("not json\n")


STAGES = "  - length: {min_words: 5}\n  - length: {max_words: 20}\n  - pii: {}\n"


def run_config(tmp_path: Path, out: str) -> Path:
    path = tmp_path / f"{out}.yaml"
    path.write_text(f"""
name: checkpoint-files
input: {{format: jsonl, paths: ["{tmp_path}/in/*.jsonl.gz"]}}
output: {{path: "{tmp_path}/{out}", formats: [parquet]}}
stages:
{STAGES}
""")
    return path


def test_a_multi_pass_run_writes_one_file_per_checkpoint_and_keeps_every_count(ray_session, tmp_path):
    """3,000 rows from 30 files through three passes (fuse off) and through one fused pass: each
    checkpoint is one file, and both give the known counts, the same statistics, rows and rejects."""
    make_inputs(tmp_path / "in")
    separate = run(load_run(run_config(tmp_path, "separate"), ["fuse=false"]))
    fused = run(load_run(run_config(tmp_path, "fused")))
    for out, passes in (("separate", ["01-length", "02-length", "03-pii"]), ("fused", ["01-length+02-length+03-pii"])):
        stages_dir = tmp_path / out / ".pipeline" / "stages"
        assert sorted(p.name for p in stages_dir.iterdir()) == passes
        for p in passes:
            attempt = json.loads((stages_dir / p / checkpoint.MARKER).read_text())["attempt"]
            assert len(parquet_files(stages_dir / p / attempt)) == 1, (out, p)

    read, first, second, pii = separate["stages"]
    assert (read["rows_in"], read["kept"], read["dropped_by_reason"]) == (3_001, 3_000, {"bad_json": 1})
    assert first["dropped_by_reason"] == {"too_few_words": sum(1 for i in range(3_000) if i % 25 < 5)}
    assert second["dropped_by_reason"] == {"too_many_words": sum(1 for i in range(3_000) if i % 25 > 20)}
    assert separate["rows_out"] == pii["kept"] == sum(1 for i in range(3_000) if 5 <= i % 25 <= 20)
    fields = ["id", "rows_in", "kept", "dropped_by_reason", "tokens_in", "tokens_kept", "tokens_dropped_by_reason",
              "hist_in", "hist_kept", "metrics"]
    assert [{f: s[f] for f in fields} for s in fused["stages"]] == [{f: s[f] for f in fields} for s in separate["stages"]]

    def table(out: str, sub: str) -> list[str]:
        """The rows' values; a null is no value (a fused pass's rejects also carry the columns later
        stages of the pass add, null for a row dropped before them; a pass of its own has no such column)."""
        rows = [r for p in (tmp_path / out / sub).rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
        return sorted(json.dumps({k: v for k, v in r.items() if v is not None}, sort_keys=True, default=str) for r in rows)

    assert len(table("separate", "data")) == separate["rows_out"]
    assert table("separate", "data") == table("fused", "data")
    assert table("separate", "rejects") == table("fused", "rejects")

    again = run(load_run(run_config(tmp_path, "separate"), ["fuse=false", "output.shard_rows=1000"]))
    assert [s["resumed"] for s in again["stages"][1:]] == [True] * 3  # every pass read back from its checkpoint
    assert again["rows_out"] == separate["rows_out"]
