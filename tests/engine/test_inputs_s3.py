"""Every input a run reads, from a real S3 server: each format gives the rows it gives from local disk,
globs and folders expand in the bucket, resume fingerprints follow the objects, and the files stages
load (models, block lists, rules, benchmarks) come from the bucket too.

The local Ray's workers read the bucket themselves, so they need the store's key pair in their
environment, as on any machine of a cluster (the endpoint travels inside the pickled filesystem).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from filters import fasttext_train as ft
from filters.language import bundled_model_path
from pipeline import storage
from pipeline.config import InputConfig
from pipeline.readers import fingerprint_inputs, read_input, source_name
from pipeline.records import DROP_REASON, stable_id
from tests.object_store import ACCESS_KEY


@pytest.fixture(scope="module")
def bucket(object_store) -> str:
    """One bucket for the module; each test writes under a prefix of its own."""
    return "s3://" + object_store.make_bucket(f"inputs-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def s3(bucket, object_store, monkeypatch, ray_session) -> str:
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)

    @ray.remote
    def key_in_a_worker():
        return os.environ.get("AWS_ACCESS_KEY_ID")

    assert ray.get(key_in_a_worker.remote()) == ACCESS_KEY, (
        "Ray's workers lack the test store's key pair: start the shared Ray with it in their environment")
    return bucket


def upload(local, uri: str) -> None:
    storage.locate(local).copy_to(storage.locate(uri))


def rows(config: dict) -> list[dict]:
    return read_input(InputConfig(**config))[0].take_all()


def canonical(found: list[dict], local_root: str, remote_root: str) -> list[str]:
    """Rows as comparable text, local names written as remote ones. What is made from a file's name (a
    quarantined record's id, an HTML file's id and the host of its URL) differs by that name alone, so
    it is left out."""
    out = []
    for row in found:
        if row.get(DROP_REASON):
            row = {k: v for k, v in row.items() if k != "id"}
        elif "html" in row and json.loads(row["meta"]).get("warc_date") is None:  # an HTML file, not a WARC record
            row = {k: v for k, v in row.items() if k not in ("id", "domain")}
        text = json.dumps(row, sort_keys=True, default=lambda b: b.decode("latin-1"))
        out.append(text.replace("file://" + local_root, remote_root).replace(local_root, remote_root))
    return sorted(out)


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """Real files of every input format in one local folder, as they will be in the bucket."""
    root = tmp_path_factory.mktemp("inputs")
    for warc in sorted((shared_data / "warc").iterdir()):
        if ".warc" in warc.name or ".arc" in warc.name:
            upload(warc, str(root / "warc" / warc.name))
    for page in sorted((shared_data / "extraction" / "trafilatura_eval" / "html").glob("*.gz"))[:12]:
        upload(page, str(root / "pages" / page.name))
    upload(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl", str(root / "jsonl" / "seeds.jsonl"))
    upload(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", str(root / "pairs" / "pairs.jsonl.gz"))
    (root / "zst").mkdir()
    with pa.CompressedOutputStream(str(root / "zst" / "pairs.jsonl.zst"), "zstd") as zst:
        zst.write(gzip.decompress((shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz").read_bytes()))
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        news = [{"text": f"{title}. {body}", "topic": topic} for topic, title, body in list(csv.reader(f))[:300]]
    (root / "parquet").mkdir()
    pq.write_table(pa.Table.from_pylist(news[:150]), root / "parquet" / "a.parquet")
    pq.write_table(pa.Table.from_pylist(news[150:]), root / "parquet" / "b.parquet")
    import datasets

    datasets.Dataset.from_list(news).save_to_disk(str(root / "saved"))
    return root


FORMATS = {  # format: (the folder of `files` it reads, its input config under a root)
    "warc": ("warc", lambda root: {"format": "warc", "paths": [f"{root}/warc/*"]}),
    "html": ("pages", lambda root: {"format": "html", "paths": [f"{root}/pages/*.html.gz"]}),
    "jsonl": ("jsonl", lambda root: {"format": "jsonl", "paths": [f"{root}/jsonl/*.jsonl"]}),
    "jsonl.gz": ("pairs", lambda root: {"format": "jsonl", "paths": [f"{root}/pairs"], "limit": 300}),
    "jsonl.zst": ("zst", lambda root: {"paths": [f"{root}/zst/pairs.jsonl.zst"], "limit": 300}),  # format by name
    "parquet": ("parquet", lambda root: {"format": "parquet", "paths": [f"{root}/parquet/*.parquet"]}),
    "hf data_files": ("parquet", lambda root: {"format": "hf", "dataset": "parquet", "name": "news",
                                               "data_files": [f"{root}/parquet/*.parquet"]}),
    "hf saved folder": ("saved", lambda root: {"format": "hf", "dataset": f"{root}/saved", "name": "news"}),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_rows_it_gives_from_disk(s3, files, fmt):
    folder, config = FORMATS[fmt]
    remote = f"{s3}/{fmt.replace(' ', '-')}"
    upload(files / folder, f"{remote}/{folder}")
    local_rows, remote_rows = rows(config(str(files))), rows(config(remote))
    assert len(local_rows) >= 12 and sum(r.get(DROP_REASON) is None for r in local_rows) >= 10
    assert canonical(remote_rows, str(files), remote) == canonical(local_rows, str(files), remote)
    if fmt == "warc":  # a WARC record's id is its own, wherever the file is
        assert sorted(r["id"] for r in remote_rows) == sorted(r["id"] for r in local_rows)
        assert f"{remote}/warc/sample-0000.warc.gz" in {json.loads(r["meta"]).get("path") for r in remote_rows}
    if fmt == "html":
        assert all(r["url"].startswith(f"{remote}/pages/") for r in remote_rows)
    if fmt == "jsonl":
        assert all(r["messages"] and r.get(DROP_REASON) is None for r in remote_rows), "the kind is found in the bucket"
    if fmt == "jsonl.zst":  # the same pairs as the gzipped file
        gzipped = rows(FORMATS["jsonl.gz"][1](str(files)))
        assert [r["chosen"] for r in remote_rows] == [r["chosen"] for r in gzipped] and len(gzipped) == 300


def test_globs_folders_and_fingerprints_follow_the_objects(s3, files):
    upload(files / "jsonl" / "seeds.jsonl", f"{s3}/fp/a/seeds.jsonl")
    upload(files / "jsonl" / "seeds.jsonl", f"{s3}/fp/b/deeper/more.jsonl")
    config = InputConfig(format="jsonl", paths=[f"{s3}/fp/**/*.jsonl"])
    size = (files / "jsonl" / "seeds.jsonl").stat().st_size
    before = fingerprint_inputs(config)
    assert [(uri, n) for uri, n, _ in before] == [(f"{s3}/fp/a/seeds.jsonl", size), (f"{s3}/fp/b/deeper/more.jsonl", size)]
    assert len(rows({"format": "jsonl", "paths": [f"{s3}/fp"]})) == 2 * 175
    assert source_name(InputConfig(format="jsonl", paths=[f"{s3}/fp/a/seeds.jsonl"])) == "seeds.jsonl"
    storage.locate(f"{s3}/fp/b/deeper/more.jsonl").write_text('{"text": "replaced"}\n')
    assert fingerprint_inputs(config) != before, "a replaced object is a changed input"


def test_stage_files_load_from_the_bucket(s3, run_stage, tmp_path, shared_data):
    """A language model, a quality classifier, a block list and domain rules in the bucket act as on disk."""
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        news = [ft.Example("hq" if c == "4" else "cc", f"{t}. {d}") for c, t, d in csv.reader(f) if c in ("2", "4")]
    model = tmp_path / "quality.bin"
    ft.train(news[:1500], seed=0, bucket=200_000).save_model(str(model))
    (tmp_path / "blocked.txt").write_text("# list\nexample.com\n")
    (tmp_path / "rules.yaml").write_text("rules:\n  - {host: wikipedia.org, label: encyclopedia}\n")
    for name in ("quality.bin", "blocked.txt", "rules.yaml"):
        upload(tmp_path / name, f"{s3}/stage-files/{name}")
    upload(bundled_model_path(), f"{s3}/stage-files/lid.176.ftz")
    texts = [e.text for e in news[1500:1560]] + ["Das ist ein kurzer deutscher Satz über das Wetter in Berlin."]
    urls = ["https://www.example.com/a", "https://en.wikipedia.org/wiki/Ray"] * 31
    data = [{"id": stable_id(t), "text": t, "url": u, "domain": None, "source": "news", "meta": "{}"}
            for t, u in zip(texts, urls)]

    def outcome(name, options):
        kept, dropped = run_stage(name, options, data)
        return sorted((r["id"], r.get(DROP_REASON)) for r in kept + dropped), kept

    remote = f"{s3}/stage-files"
    for name, local, there in [
        ("language", {"keep": ["en"]}, {"keep": ["en"], "model": f"{remote}/lid.176.ftz"}),
        ("quality", {"model": str(model)}, {"model": f"{remote}/quality.bin"}),
        ("url_filter", {"domain_files": [str(tmp_path / "blocked.txt")]}, {"domain_files": [f"{remote}/blocked.txt"]}),
        ("domain", {"rules": str(tmp_path / "rules.yaml")}, {"rules": f"{remote}/rules.yaml"}),
    ]:
        (expected, _), (got, kept) = outcome(name, local), outcome(name, there)
        assert got == expected, name
        assert {r for _, r in got} != {None} or name == "domain", f"{name} decided something"
    assert {r["domain_label"] for r in kept} == {"encyclopedia", "other"}


def test_benchmarks_load_from_the_bucket(s3, run_stage, shared_data):
    """`decontaminate` with a benchmark file and a registered benchmark's layout, both in the bucket."""
    from filters.contamination import REGISTRY, load_items

    bench = shared_data / "benchmarks"
    upload(bench / "gsm8k" / "test.jsonl", f"{s3}/bench/gsm8k/test.jsonl")
    upload(bench / "humaneval", f"{s3}/bench/humaneval")
    gsm = load_items(REGISTRY["gsm8k"], bench)
    code = load_items(REGISTRY["humaneval"], bench)
    data = [{"id": "clean", "text": "A walk in the park on a sunny day, with friends and a picnic basket."},
            {"id": "gsm", "text": "Notes. " + gsm[5].parts[0] + "\n" + gsm[5].parts[1]},
            {"id": "code", "text": "Notes. " + code[3].parts[0]}]
    options = {"benchmarks": [{"path": f"{s3}/bench/gsm8k/test.jsonl", "fields": ["question", "answer"], "name": "gsm"},
                              "humaneval"],
               "benchmarks_dir": f"{s3}/bench/"}
    kept, dropped = run_stage("decontaminate", options, data)
    assert [r["id"] for r in kept] == ["clean"]
    assert {r["id"]: r[DROP_REASON] for r in dropped} == {"gsm": "contaminated:gsm", "code": "contaminated:humaneval"}


def test_a_big_jsonl_object_is_read_in_byte_ranges_by_several_tasks(s3, tmp_path):
    """Ranged reads of an object (one request per range, then to the end of its last line) on Ray's
    workers give the rows of the whole file, in order; a bad line is located by its byte offset."""
    from pipeline.normalize import Normalizer
    from pipeline.readers import JsonlRanges

    lines = [json.dumps({"id": f"d{i}", "text": f"document {i} " + "word " * (i % 40)}).encode() for i in range(4000)]
    lines[3100] = b'{"id": "broken'
    local = tmp_path / "big.jsonl"
    local.write_bytes(b"\n".join(lines) + b"\n")
    upload(local, f"{s3}/ranges/big.jsonl")
    source = JsonlRanges(storage.expand([f"{s3}/ranges/big.jsonl"], "input.paths"), Normalizer("document", "big"),
                         range_bytes=50_000)
    assert len(source.get_read_tasks(1)) > 10
    found = ray.data.read_datasource(source).take_all()
    assert [r["id"] for r in found if not r[DROP_REASON]] == [f"d{i}" for i in range(4000) if i != 3100]
    (bad,) = [r for r in found if r[DROP_REASON]]
    where = json.loads(bad["meta"])
    assert (where["path"], where["byte"]) == (f"{s3}/ranges/big.jsonl", sum(len(x) + 1 for x in lines[:3100]))
