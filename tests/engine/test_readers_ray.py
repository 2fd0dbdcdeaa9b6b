"""Every input format through Ray Data, as `pipeline run` reads it."""

from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import InputConfig
from pipeline.errors import UserError
from pipeline.readers import TASKS_PER_CPU, read_input, read_inputs
from pipeline.records import DROP_REASON


def rows(config: dict) -> list[dict]:
    return read_input(InputConfig(**config))[0].take_all()


def test_parquet_with_field_mapping(ray_session, tmp_path):
    pq.write_table(pa.table({"body": ["first text", "second text"], "key": ["a", "b"], "lang": ["en", "de"]}),
                   tmp_path / "p.parquet")
    out = rows({"format": "parquet", "paths": [str(tmp_path / "p.parquet")], "fields": {"text": "body", "id": "key"}})
    assert sorted((r["id"], r["text"]) for r in out) == [("a", "first text"), ("b", "second text")]
    assert json.loads(out[0]["meta"])["lang"] in ("en", "de")


def test_html_directory(ray_session, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.html").write_text("<html><body><p>A page</p></body></html>")
    (tmp_path / "site" / "b.html.gz").write_bytes(gzip.compress(b"<html><body><p>B page</p></body></html>"))
    out = rows({"format": "html", "paths": [str(tmp_path / "site")]})
    assert sorted(r["html"][:6] for r in out) == [b"<html>", b"<html>"]
    assert all(r["url"].startswith("file://") for r in out)


@pytest.mark.parametrize("fmt", ["jsonl", "html"])
def test_a_folder_of_small_files_is_read_a_few_files_to_a_task_with_every_row_in_order(ray_session, tmp_path, fmt):
    """Ray's readers gave each few files a task (a JSONL file one, and HTML pages a task a megabyte), and a
    task costs the driver about as much as reading a few small files: 1,000 JSONL files took 2.3x the time of
    the same rows in one file."""
    import ray

    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(60):
        if fmt == "jsonl":
            (folder / f"{k:03d}.jsonl").write_text("".join(json.dumps({"id": f"{k}-{i}", "text": f"row {i} of {k}"}) + "\n"
                                                        for i in range(5)))
        else:
            (folder / f"{k:03d}.html").write_text(f"<html><body><p>page {k}</p><!-- {'padding ' * 25_000} --></body></html>")
    dataset = read_input(InputConfig(format=fmt, paths=[str(folder)]))[0].materialize()
    found = dataset.take_all()
    if fmt == "jsonl":
        assert [r["id"] for r in found] == [f"{k}-{i}" for k in range(60) for i in range(5)]
    else:
        assert len(found) == 60 and all(f"<p>page {k}</p>".encode() in r["html"] for k, r in enumerate(found))
    tasks = int(re.search(r"Read\w+: (\d+) tasks executed", dataset.stats()).group(1))
    assert tasks <= TASKS_PER_CPU * ray.cluster_resources()["CPU"] + 1, dataset.stats()  # +1: files are whole


def test_a_read_is_split_into_two_blocks_a_cpu_not_into_a_hundred(ray_session, tmp_path):
    """Ray split a read until the dataset had 200 blocks (20 of a megabyte for this file), each block a task
    of every pass: on a small cluster their scheduling cost more than a cheap stage's work."""
    import ray

    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": "word " * 400}) + "\n" for i in range(10_000)))
    dataset = read_input(InputConfig(format="jsonl", paths=[str(path)]))[0].materialize()
    assert dataset.count() == 10_000
    assert dataset.num_blocks() <= TASKS_PER_CPU * ray.cluster_resources()["CPU"]


def test_warc_directory_of_shared_files(ray_session, shared_data):
    out = rows({"format": "warc", "paths": [str(shared_data / "warc" / "sample-000*.warc.gz")]})
    good = [r for r in out if r.get(DROP_REASON) is None]
    assert len(good) >= 20 and all(r["domain"] and r["html"] for r in good)
    assert len({r["id"] for r in good}) == len(good)


def test_instruction_jsonl_from_shared_seeds(ray_session, shared_data):
    out = rows({"format": "jsonl", "paths": [str(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")]})
    assert len(out) == 175
    assert all(r["messages"][0]["role"] == "user" and r["generated_by"] == "human" for r in out)


def test_the_shared_seeds_as_one_json_array_read_as_their_jsonl(ray_session, shared_data, tmp_path):
    """Alpaca's data ships as an indented JSON array, not JSON Lines; it used to be one not_an_object row."""
    seeds = shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl"
    (tmp_path / "seeds.json").write_text(json.dumps([json.loads(line) for line in seeds.open()], indent=2))
    as_array = rows({"format": "jsonl", "paths": [str(tmp_path / "seeds.json")]})
    as_lines = rows({"format": "jsonl", "paths": [str(seeds)]})
    assert len(as_array) == 175 and [r["messages"] for r in as_array] == [r["messages"] for r in as_lines]


def test_hugging_face_datasets_from_local_files(ray_session, tmp_path):
    path = tmp_path / "hf.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(10)))
    out = rows({"format": "hf", "dataset": "json", "data_files": [str(path)], "split": "train"})
    assert sorted(r["text"] for r in out) == sorted(f"row {i}" for i in range(10))


def test_preference_pairs_from_shared_hh(ray_session, shared_data):
    out = rows({"format": "jsonl", "paths": [str(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz")],
                "limit": 50})
    assert len(out) == 50
    good = [r for r in out if r.get(DROP_REASON) is None]
    assert good and all(r["chosen"][0]["role"] == "assistant" and r["prompt"][-1]["role"] == "user" for r in good)


def test_parquet_input_reads_at_most_limit_rows(ray_session, shared_data, tmp_path):
    """`limit:` holds for Parquet as for every other format (the Parquet branch used to return before it)."""
    import pyarrow.json as pajson

    questions = pajson.read_json(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")
    pq.write_table(questions, tmp_path / "gsm8k.parquet", row_group_size=100)
    config = {"format": "parquet", "paths": [str(tmp_path / "gsm8k.parquet")], "fields": {"text": "question"}}
    assert len(rows(config)) == questions.num_rows == 1319
    limited = rows({**config, "limit": 25})
    assert len(limited) == 25
    assert {r["text"] for r in limited} <= set(questions.column("question").to_pylist())


def test_records_do_not_mix_with_other_kinds(ray_session, tmp_path, shared_data):
    """Seed tasks beside documents: each row would lack the other kind's columns, and the stages judge an
    instruction by its empty `text` (a length filter dropped 156 of the 175 seeds as too short)."""
    (tmp_path / "docs.jsonl").write_text('{"text": "a document of a few words"}\n')
    seeds = InputConfig(paths=[str(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")])
    docs = InputConfig(paths=[str(tmp_path / "docs.jsonl")])
    with pytest.raises(UserError, match=r"different kinds of rows \(.*docs.jsonl: document; .*seed_tasks.jsonl: "
                                        r"instruction\)"):
        read_inputs([docs, seeds])
    assert len(read_inputs([docs, InputConfig(paths=[str(tmp_path / "docs.jsonl")], name="again")]).take_all()) == 2
    (tmp_path / "page.html").write_text("<html><body><p>A page</p></body></html>")
    mixed = read_inputs([docs, InputConfig(format="html", paths=[str(tmp_path / "page.html")])]).take_all()
    assert len(mixed) == 2, "pages and documents may be read together"
