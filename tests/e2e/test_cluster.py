"""`pipeline run` on a real multi-node Ray cluster (tests/cluster.py): a node that lacks a dependency,
a node lost mid-run, a driver killed mid-run, a run submitted as a Ray Job, and a web-curation run
from and to object storage that gives exactly the rows of the same run on local disk."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cluster import RayCluster, python_without

pytestmark = pytest.mark.slow

PIPELINE = [sys.executable, "-m", "pipeline.cli"]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*PIPELINE, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


WARCS = ("sample-0000.warc.gz", "sample-0001.warc.gz", "whirlwind.warc.gz")
EARLIER = WARCS[:1]  # the earlier run whose dedup index the main run is deduplicated against


def web_config(root: str, out: str, warcs=WARCS, against: str | None = None) -> dict:
    """The web chain on real WARC files: extract, language, heuristics, dedup (indexed; `against` an
    earlier run's index) and decontaminate against a benchmark that quotes one of the pages.
    `root` is where the inputs are: a local folder or an s3:// prefix."""
    dedup = {"method": "minhash", "threshold": 0.7, "bands": None, "rows": None}
    stages = [{"extract": {"engine": "trafilatura", "timeout_s": 30}},
              {"language": {"keep": ["en"], "min_score": 0.5}},
              {"heuristics": {"rules": ["gopher_repetition", "c4"]}},
              {"dedup": {**dedup, "against": [against]} if against else dedup}]
    if against:
        stages.append({"decontaminate": {"benchmarks": [{"path": f"{root}/benchmark.jsonl", "fields": ["question"],
                                                         "id_field": "id", "name": "quoted"}],
                                         "ngram": 8, "action": "drop"}})
    return {"name": "web", "input": {"format": "warc", "paths": [f"{root}/warc/{w}" for w in warcs], "name": "crawl"},
            "output": {"path": out, "formats": ["parquet"]}, "stages": stages}


def quoted_benchmark(warc: Path) -> list[dict]:
    """Ten real GSM8K questions and, as an eleventh item, a passage of a page in `warc` (extracted
    here with the library the extract stage uses), so decontaminate has a page to find."""
    from warcio.archiveiterator import ArchiveIterator

    from filters.html_extract import extract_trafilatura

    with open(warc, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                text, _ = extract_trafilatura(record.content_stream().read().decode("utf-8", "replace"))
                words = text.split()
                if len(words) > 200:
                    break
    return [{"id": "quoted", "question": " ".join(words[100:130])}]


def rows(out: str) -> tuple[list[dict], list[tuple]]:
    """A run's kept rows (every column) and its rejects (id, stage, reason), in id order, from any storage."""
    from pipeline import storage

    root = storage.locate(out)
    kept = [r for f in (root / "data").files() if f.suffix == ".parquet" for r in pq.read_table(f.open_read()).to_pylist()]
    for r in kept:  # where the input was read from is the one thing that differs, by design
        meta = json.loads(r["meta"])
        r["meta"] = {**meta, "path": meta["path"].rsplit("/", 1)[-1]}
    rejects = [(r["id"], r["stage"], r["reason"]) for f in (root / "rejects").files() if f.suffix == ".parquet"
               for r in pq.read_table(f.open_read(), columns=["id", "stage", "reason"]).to_pylist()]
    return sorted(kept, key=lambda r: r["id"]), sorted(rejects)


@pytest.fixture(scope="module")
def web(shared_data, tmp_path_factory) -> dict:
    """The web chain run on local disk with an embedded Ray (the reference every cluster run must
    equal), after the earlier run whose dedup index it is deduplicated against."""
    root = tmp_path_factory.mktemp("web")
    (root / "warc").mkdir()
    for name in WARCS:
        shutil.copy(shared_data / "warc" / name, root / "warc" / name)
    questions = [json.loads(line) for line in open(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")][:10]
    items = [{"id": f"gsm8k-{i}", "question": q["question"]} for i, q in enumerate(questions)]
    (root / "benchmark.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items + quoted_benchmark(root / "warc" / WARCS[1])))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    earlier = cli("run", "--quiet", str(write_config(root / "earlier.yaml", web_config(str(root), str(root / "earlier"), EARLIER))), env=env)
    assert earlier.returncode == 0, earlier.stderr[-3000:]
    (index,) = (root / "earlier" / "dedup_index").iterdir()
    config = web_config(str(root), str(root / "local"), against=str(index))
    reference = cli("run", "--quiet", str(write_config(root / "local.yaml", config)), env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    kept, rejects = rows(str(root / "local"))
    reasons = {reason for _, _, reason in rejects}
    assert kept and {"near_duplicate", "contaminated:quoted"} <= reasons, reasons  # `against` and the quote found
    return {"root": root, "index": index, "kept": kept, "rejects": rejects,
            "stats": json.loads((root / "local" / "stats.json").read_text())}


@pytest.fixture(scope="module")
def cluster(object_store):
    """Two nodes of one CPU each, configured with the S3 store's endpoint and keys as a cluster's
    nodes would be (by their image or instance role)."""
    cluster = RayCluster(env=object_store.env())
    try:
        cluster.start_head(num_cpus=1, dashboard=True)
        cluster.add_worker(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


def upload(web: dict, bucket: str) -> dict:
    """The reference run's inputs (WARC files, benchmark, the earlier run's dedup index) in a bucket."""
    from pipeline import storage

    storage.locate(web["root"] / "warc").copy_to(storage.locate(f"{bucket}/warc"))
    storage.locate(web["root"] / "benchmark.jsonl").copy_to(storage.locate(f"{bucket}/benchmark.jsonl"))
    index = f"{bucket}/earlier/dedup_index/{web['index'].name}"
    storage.locate(web["index"]).copy_to(storage.locate(index))
    return web_config(bucket, f"{bucket}/out", against=index)


def test_web_chain_from_and_to_s3_on_two_nodes_gives_the_rows_of_a_local_run(web, cluster, s3_bucket, tmp_path):
    config = write_config(tmp_path / "s3.yaml", upload(web, s3_bucket))
    run = cli("run", "--quiet", str(config), env=cluster.client_env())
    assert run.returncode == 0, run.stderr[-3000:]
    assert rows(f"{s3_bucket}/out") == (web["kept"], web["rejects"])
    stats = json.loads(storage_text(f"{s3_bucket}/out/stats.json"))
    assert [s["kept"] for s in stats["stages"]] == [s["kept"] for s in web["stats"]["stages"]]


def storage_text(uri: str) -> str:
    from pipeline import storage

    return storage.locate(uri).read_text()
