"""`pipeline run` with `output.path: s3://...` on a real S3 server: the same rows, statistics and rejects
as on local disk, dedup `against:` an index in the bucket, and resume after SIGKILL from checkpoints
in the bucket. Each run is the CLI in a subprocess with the store's endpoint and keys in its
environment, as a user runs it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import tarfile
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import storage
from tests.cli import PIPELINE, cli
from tests.e2e.test_cli import RESUME_CONFIG, write_corpus

VOLATILE = ("wall_s", "resumed", "started", "time_to_first_stage_s", "config")


def store_cli(object_store, *args) -> subprocess.CompletedProcess:
    return cli(*args, env={**os.environ, **object_store.env()})


def news(shared_data, n: int) -> list[str]:
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        return [f"{title}. {desc}" for _, title, desc in list(csv.reader(f))[:n]]


def edited(text: str, rng: random.Random) -> str:
    words = text.split()
    words[rng.randrange(len(words))] = "bravo"
    return " ".join(words)


def write_news(path, shared_data, n: int = 1200, copies: int = 150) -> None:
    """AG News items, then light edits of the first `copies` (near duplicates) and exact copies of a few."""
    rng = random.Random(5)
    texts = news(shared_data, n)
    rows = [{"id": f"n{i:05d}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"c{i:05d}", "text": edited(texts[i], rng) if i % 3 else texts[i]} for i in range(copies)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


PIPELINE_CONFIG = """
name: outputs
fuse: {fuse}
input: {{format: jsonl, paths: ["{input}"]}}
output: {{path: "{out}", shard_rows: 250, formats: [parquet, jsonl]}}
stages:
  - length: {{min_words: 25}}
  - length: {{max_words: 45}}
  - dedup: {{}}
  - length: {{min_chars: 180}}
"""


def table(folder: storage.Location) -> pa.Table:
    parts = [pq.read_table(f.open_read()) for f in folder.files() if f.suffix == ".parquet"]
    return pa.concat_tables(parts).sort_by("id")


def jsonl_rows(folder: storage.Location) -> list[dict]:
    return sorted((json.loads(line) for f in folder.files() for line in f.read_text().splitlines()), key=lambda r: r["id"])


def rows_per_folder(manifest: dict) -> dict[str, int]:
    """Rows per folder, not per file: where one shard ends follows how Ray bundles blocks as they arrive."""
    rows: dict[str, int] = {}
    for f in manifest["files"]:
        folder = f["path"].rsplit("/", 1)[0]
        rows[folder] = rows.get(folder, 0) + f["rows"]
    return rows


def outcome(out: storage.Location) -> dict:
    """What a user gets from a run: shards in both formats, rejects per stage, statistics, the manifest."""
    result = json.loads((out / "stats.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "data": table(out / "data").to_pylist(),
        "jsonl": jsonl_rows(out / "data_jsonl"),
        "rejects": {stage.name: table(stage).select(["id", "reason", "stage"]).to_pylist()
                    for stage in (out / "rejects").children()},
        "stats": {**{k: v for k, v in result.items() if k not in VOLATILE and k != "stages"},
                  "stages": [{k: v for k, v in s.items() if k not in VOLATILE} for s in result["stages"]]},
        "manifest": rows_per_folder(manifest),
        "rows": manifest["rows"],
    }


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "a-pass-per-stage"])
def test_a_run_writing_to_s3_gives_what_it_gives_on_local_disk(object_store, s3_bucket, shared_data, tmp_path, fuse):
    corpus = tmp_path / "news.jsonl"
    write_news(corpus, shared_data)
    outputs = {"local": str(tmp_path / "out"), "s3": f"{s3_bucket}/runs/out"}
    for where, out in outputs.items():
        config = tmp_path / f"{where}.yaml"
        config.write_text(PIPELINE_CONFIG.format(fuse=str(fuse).lower(), input=corpus, out=out))
        proc = store_cli(object_store, "run", "--quiet", str(config))
        assert proc.returncode == 0, proc.stderr

    local, remote = (storage.locate(out) for out in outputs.values())
    expected, got = outcome(local), outcome(remote)
    assert got["stats"]["stages"][3]["dropped_by_reason"]["near_duplicate"] > 0
    assert {"01-length", "02-length", "03-dedup", "04-length"} <= set(got["rejects"])
    for key in expected:
        assert got[key] == expected[key], key
    for f in json.loads((remote / "manifest.json").read_text())["files"]:  # hashed as written, never read back
        content = (remote / f["path"]).read_bytes()
        assert (len(content), hashlib.sha256(content).hexdigest()) == (f["bytes"], f["sha256"]), f["path"]

    assert (remote / "report.html").read_text().count("<svg") >= 3 and (remote / "README.md").exists()
    assert (remote / "dedup_index" / "03-dedup" / "params.json").exists()
    logs = (remote / "logs").children()
    assert len(logs) == 1 and (logs[0] / "console.log").exists() and (logs[0] / "ray.tar.gz").exists()
    secret = object_store.env()["AWS_SECRET_ACCESS_KEY"].encode()
    for f in remote.files(hidden=True):  # credentials come from the environment and go into no output
        content = f.read_bytes()
        if f.name.endswith(".tar.gz"):
            content = b"".join(m.read() for m in _members(content))
        assert secret not in content, f.uri
    work = remote / ".pipeline"
    for pass_dir in (work / "stages").children():  # each pass holds its marker and the attempt it names
        attempt = json.loads((pass_dir / "_SUCCESS.json").read_text())["attempt"]
        assert {f.relative_to(pass_dir).split("/")[0] for f in pass_dir.files(hidden=True)} == {"_SUCCESS.json", attempt}
    assert not [f for f in work.files(hidden=True) if f.relative_to(work).startswith("write-")]

    again = store_cli(object_store, "run", str(tmp_path / "s3.yaml"))  # finished: answered from the manifest in the bucket
    assert again.returncode == 0 and "nothing to do, the output is complete" in again.stderr, again.stderr
    # Read where it was written (it said "not a pipeline output (no manifest.json)" of any URI).
    shown = store_cli(object_store, "inspect", outputs["s3"], "-n", "1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{outputs['s3']}: {got['rows']:,} rows" and "samples from data/:" in lines
    assert json.loads(lines[-1])["id"] in {r["id"] for r in got["data"]}


@pytest.mark.slow
@pytest.mark.shared_data
def test_dedup_against_an_index_in_s3(object_store, s3_bucket, shared_data, tmp_path):
    texts = news(shared_data, 300)
    (tmp_path / "first.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    later = [{"id": f"copy{i}", "text": f"{texts[i]} today" if i % 20 else texts[i]} for i in range(0, 300, 10)]
    later += [{"id": f"new{i}", "text": t} for i, t in enumerate(news(shared_data, 400)[300:])]
    (tmp_path / "later.jsonl").write_text("".join(json.dumps(r) + "\n" for r in later))
    index = f"{s3_bucket}/indexes/news"
    for name, options in (("first", f"index_dir: {index}"), ("later", f"against: [{index}], index: false")):
        (tmp_path / f"{name}.yaml").write_text(
            f'input: {{format: jsonl, paths: ["{tmp_path / name}.jsonl"]}}\n'
            f'output: "{s3_bucket}/runs/{name}"\nstages:\n  - dedup: {{{options}}}\n')
        proc = store_cli(object_store, "run", "--quiet", str(tmp_path / f"{name}.yaml"))
        assert proc.returncode == 0, proc.stderr

    assert {f.name for f in storage.locate(index).files()} >= {"params.json", "part-00000.parquet"}
    rejects = table(storage.locate(f"{s3_bucket}/runs/later/rejects/01-dedup")).to_pylist()
    assert {r["id"]: r["dup_of"] for r in rejects} == {f"copy{i}": f"n{i}" for i in range(0, 300, 10)}
    kept = table(storage.locate(f"{s3_bucket}/runs/later/data")).column("id").to_pylist()
    assert kept == sorted(f"new{i}" for i in range(100))


def unmarked_attempt(stages: storage.Location) -> bool:
    """A pass is being written in the bucket: an attempt holds files and no marker names it."""
    for pass_dir in stages.children():
        try:
            named = json.loads((pass_dir / "_SUCCESS.json").read_text())["attempt"]
        except FileNotFoundError:
            named = None
        if any(c.name not in ("_SUCCESS.json", named) and c.files() for c in pass_dir.children()):
            return True
    return False


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_from_checkpoints_in_s3(object_store, s3_bucket, tmp_path):
    """The driver killed while the first pass is being written to the bucket: the re-run redoes it from
    the input, finishes, and equals an uninterrupted run on local disk."""
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 200_000)
    out = f"{s3_bucket}/resume"
    killed_cfg, clean_cfg = tmp_path / "killed.yaml", tmp_path / "clean.yaml"
    killed_cfg.write_text(RESUME_CONFIG.format(fuse="false", input=corpus, out=out))
    clean_cfg.write_text(RESUME_CONFIG.format(fuse="false", input=corpus, out=tmp_path / "clean"))

    stages = storage.locate(out) / ".pipeline" / "stages"
    proc = subprocess.Popen([*PIPELINE, "run", "--quiet", str(killed_cfg)], start_new_session=True,
                            env={**os.environ, **object_store.env()}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (stages / "01-length" / "_SUCCESS.json").exists() and unmarked_attempt(stages):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run must be killed while it writes a checkpoint"

    resumed = store_cli(object_store, "run", "--quiet", str(killed_cfg))
    assert resumed.returncode == 0, resumed.stderr
    assert not unmarked_attempt(stages), "the killed run's attempt is deleted"
    clean = store_cli(object_store, "run", "--quiet", str(clean_cfg))
    assert clean.returncode == 0, clean.stderr

    remote, local = storage.locate(out), storage.locate(tmp_path / "clean")
    stats = json.loads((remote / "stats.json").read_text())
    assert stats["stages"][1]["resumed"] and not stats["stages"][-1]["resumed"]
    assert table(remote / "data").column("id").to_pylist() == table(local / "data").column("id").to_pylist()
    strip = lambda s: [(x["id"], x["rows_in"], x["kept"], x["dropped_by_reason"]) for x in s["stages"]]  # noqa: E731
    assert strip(stats) == strip(json.loads((local / "stats.json").read_text()))


def _members(archive: bytes):
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        yield from (tar.extractfile(m) for m in tar.getmembers() if m.isfile())
