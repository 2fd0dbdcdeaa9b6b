"""`readers.format_of`: the format of a path given without a config (`contamination-report --data`), on real folders."""

from __future__ import annotations

import pytest

from pipeline import storage
from pipeline.readers import format_of


def format_at(path) -> str | None:
    return format_of(str(path), storage.expand([str(path)], "--data"))


@pytest.mark.parametrize("path, expected", [
    ("benchmarks/humaneval", "jsonl"),  # HumanEval.jsonl.gz; SOURCE.txt beside it does not vote
    ("benchmarks/gsm8k/test.jsonl", "jsonl"),
    ("benchmarks/mmlu/test", "hf"),  # CSV files: a folder `datasets` reads
    ("benchmarks/mmlu/test/anatomy_test.csv", None),
    ("warc", "warc"),  # .warc, .arc, .warc.gz; its SOURCE.txt used to make it a `datasets` folder of text lines
    ("warc/*.warc.gz", "warc"),
    ("extraction/trafilatura_eval/html", "html"),
])
def test_shared_data(shared_data, path, expected):
    assert format_at(shared_data / path) == expected


def test_parquet_and_jsonl_decide_before_pages_and_a_saved_dataset_is_hf(tmp_path):
    for folder, names in {"mixed": ["a.parquet", "b.jsonl"], "docs": ["a.parquet", "index.html"],
                          "saved": ["data-00000-of-00001.arrow", "state.json", "dataset_info.json"],
                          "pages": ["a.warc.gz", "b.html"]}.items():
        for name in names:
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / name).write_bytes(b"")
    assert format_at(tmp_path / "mixed") == "hf"
    assert format_at(tmp_path / "docs") == "parquet"  # as before pages were known
    assert format_at(tmp_path / "saved") == "hf"
    assert format_at(tmp_path / "pages") == "hf"  # two kinds of pages: no vote
    assert format_at(tmp_path / "mixed" / "b.jsonl") == "jsonl"
    assert format_at(tmp_path / "mixed" / "*") is None  # a glob is never a dataset folder
