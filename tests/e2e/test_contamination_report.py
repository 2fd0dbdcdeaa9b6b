"""`pipeline contamination-report` end to end: real GSM8K/HumanEval items planted in JSONL and Parquet data."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.contamination import REGISTRY, load_items
from pipeline import storage
from pipeline.cli import main
from tests.cli import PIPELINE, cli

FILLER = "Notes from the weekend workshop on gardening, with photos and a list of the plants we swapped. "


@pytest.fixture(scope="module")
def case(shared_data, tmp_path_factory):
    bench = shared_data / "benchmarks"
    gsm = load_items(REGISTRY["gsm8k"], bench)
    code = load_items(REGISTRY["humaneval"], bench)
    root = tmp_path_factory.mktemp("contamination")
    docs = [{"id": f"d{i:02d}", "text": FILLER * 3} for i in range(40)]
    docs[3]["text"] = FILLER + gsm[5].parts[0] + " " + FILLER  # question only
    docs[7]["text"] = FILLER + gsm[5].parts[0] + "\n" + gsm[5].parts[1] + " " + FILLER  # whole item
    docs[9]["text"] = FILLER + code[2].parts[0] + FILLER
    with open(root / "web.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    chats = [
        {"id": "c1", "messages": [{"role": "user", "content": gsm[40].parts[0]}, {"role": "assistant", "content": "42"}]},
        {"id": "c2", "messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]},
    ]
    pq.write_table(pa.Table.from_pylist(chats), root / "chat.parquet")
    return {"root": root, "bench": str(bench), "gsm": gsm, "code": code}


def report(case, out, *extra):
    root = case["root"]
    code = main(["contamination-report", "--data", str(root / "web.jsonl"), str(root / "chat.parquet"),
                 "--benchmarks", "gsm8k,humaneval", "--benchmarks-dir", case["bench"], "--out", str(out), "--quiet", *extra])
    return code


def test_report_on_a_small_case_field_by_field(ray_session, case, tmp_path):
    assert report(case, tmp_path / "a") == 0
    r = json.loads((tmp_path / "a" / "report.json").read_text())
    web, chat = str(case["root"] / "web.jsonl"), str(case["root"] / "chat.parquet")
    gsm5, gsm40, he2 = case["gsm"][5], case["gsm"][40], case["code"][2]

    assert r["sources"] == {web: {"rows_scanned": 40, "rows_unreadable": 0}, chat: {"rows_scanned": 2, "rows_unreadable": 0}}
    assert r["benchmarks"]["gsm8k"]["items"] == len(case["gsm"]) and r["benchmarks"]["humaneval"]["items"] == 164
    assert r["matrix"][web]["gsm8k"]["items_contaminated"] == 1
    assert r["matrix"][web]["humaneval"] == {"items_contaminated": 1, "items_fully_found": 1,
                                             "pct_of_benchmark": round(100 / 164, 4)}
    assert r["matrix"][chat]["gsm8k"]["items_contaminated"] == 1 and r["matrix"][chat]["humaneval"]["items_contaminated"] == 0
    assert r["matrix"]["all sources"]["gsm8k"]["items_contaminated"] == 2
    assert r["totals"]["items_contaminated"] == 3

    items = {(i["source"], i["item_id"]): i for i in r["items"]}
    assert set(items) == {(web, gsm5.item_id), (web, he2.item_id), (chat, gsm40.item_id)}
    whole = items[(web, gsm5.item_id)]
    assert (whole["coverage"], whole["rows"], whole["best_row_id"]) == (1.0, 2, "d07")
    assert whole["matched"] == whole["item_ngrams"]
    assert whole["span"]["text"] == gsm5.parts[0] + "\n" + gsm5.parts[1]
    assert whole["span"]["start"] == len(FILLER)
    assert items[(web, he2.item_id)]["best_row_id"] == "d09"
    chat_hit = items[(chat, gsm40.item_id)]
    assert chat_hit["best_row_id"] == "c1" and 0 < chat_hit["coverage"] < 1  # the question without its answer
    assert chat_hit["span"]["text"] == gsm40.parts[0]

    md = (tmp_path / "a" / "report.md").read_text()
    page = (tmp_path / "a" / "report.html").read_text()
    assert f"| {web} | 1 (0.08%) | 1 (0.61%) |" in md
    assert "HumanEval/2" in page and "<script" not in page and "http" not in page

    assert report(case, tmp_path / "b") == 0  # same inputs, same bytes
    assert (tmp_path / "b" / "report.json").read_bytes() == (tmp_path / "a" / "report.json").read_bytes()


def test_user_errors_are_one_line_and_exit_2(case, tmp_path, capsys):
    root = case["root"]
    code = main(["contamination-report", "--data", str(root / "web.jsonl"), "--benchmarks", "gsm9k", "--out", str(tmp_path)])
    assert code == 2 and "unknown benchmark 'gsm9k'" in capsys.readouterr().err
    code = main(["contamination-report", "--data", str(root / "missing.jsonl"), "--benchmarks", "gsm8k", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no file matches" in err and "missing.jsonl" in err and len(err.strip().splitlines()) == 1
    code = main(["contamination-report", "--data", str(root / "web.jsonl"), "--benchmarks", str(root / "web.jsonl"),
                 "--fields", "question", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no row has text in question" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("data, why", [
    # `datasets` read the folder's SOURCE.txt line by line, and the report said "0 items contaminated" of that
    ("{shared}/warc", "WARC files are web pages, and the report checks text"),
    ("{shared}/warc/*.warc.gz", "WARC files are web pages, and the report checks text"),  # "cannot tell the format"
    ("{shared}/extraction/trafilatura_eval/html", "HTML files are web pages"),  # `datasets`: "no data files found"
    ("hf:", "needs a dataset name after 'hf:'"),  # the input model's ValidationError, with its traceback
])
def test_data_the_report_cannot_check_is_one_line_before_any_work(shared_data, tmp_path, data, why):
    """The run reads web pages (`format: warc/html`) but they hold no text until extracted; the report says
    so, in one line, with exit code 2, before Ray starts or anything is written."""
    data = data.format(shared=shared_data)
    proc = cli("contamination-report", "--data", data, "--benchmarks", "gsm8k", "--benchmarks-dir",
               str(shared_data / "benchmarks"), "--out", str(tmp_path / "r"), "--quiet")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: --data {data}") and why in proc.stderr
    assert not (tmp_path / "r").exists()


def test_report_from_and_to_object_storage(ray_session, object_store, case, tmp_path, monkeypatch):
    """Data, the benchmarks' copies and the report in a bucket: the report of the same data on disk, with
    each source named by its URI. The command runs as a user runs it, with the store in its environment."""
    bucket = "s3://" + object_store.make_bucket(f"contamination-{uuid.uuid4().hex[:8]}")
    with monkeypatch.context() as env:
        for key, value in object_store.env().items():
            env.setenv(key, value)
        for name in ("web.jsonl", "chat.parquet"):
            storage.locate(case["root"] / name).copy_to(storage.locate(f"{bucket}/data/{name}"))
        for layout in ("gsm8k", "humaneval"):
            storage.locate(f"{case['bench']}/{layout}").copy_to(storage.locate(f"{bucket}/bench/{layout}"))
    proc = subprocess.run([*PIPELINE, "contamination-report", "--data", f"{bucket}/data/web.jsonl", f"{bucket}/data/chat.parquet",
                           "--benchmarks", "gsm8k,humaneval", "--benchmarks-dir", f"{bucket}/bench", "--out", f"{bucket}/report",
                           "--quiet"], capture_output=True, text=True, timeout=600, env={**os.environ, **object_store.env()})
    assert proc.returncode == 0, proc.stderr
    assert report(case, tmp_path / "local") == 0
    with monkeypatch.context() as env:
        for key, value in object_store.env().items():
            env.setenv(key, value)
        remote = {name: storage.locate(f"{bucket}/report/{name}").read_text() for name in ("report.json", "report.md", "report.html")}
        assert storage.locate(f"{bucket}/report/logs/console.log").exists(), "Ray's messages are kept beside the report"
    local = {name: (tmp_path / "local" / name).read_text().replace(f"{case['root']}/", f"{bucket}/data/") for name in remote}
    assert json.loads(remote["report.json"]) == json.loads(local["report.json"])  # sources sort by name: compare as data
    assert json.loads(remote["report.json"])["totals"]["items_contaminated"] == 3
    assert sorted(remote["report.md"].splitlines()) == sorted(local["report.md"].splitlines())
    assert f"{bucket}/data/web.jsonl" in remote["report.html"] and "HumanEval/2" in remote["report.html"]


def test_preference_data_is_checked_and_the_report_names_the_field(shared_data, case, tmp_path):
    """Preference rows were scanned as empty text: a DPO set with a leaked GSM8K question in `chosen` reported
    0 items contaminated. Run as a user runs it, on the shared preference pairs (HH-RLHF's whole dialogues)."""
    import gzip

    gsm5 = case["gsm"][5]
    with gzip.open(shared_data / "preferences/hh_rlhf_harmless/pairs.jsonl.gz", "rt") as f:
        pairs = [json.loads(line) for _, line in zip(range(30), f)]
    assert {k for p in pairs for k in p} == {"chosen", "rejected"}
    pairs[12]["chosen"] += " By the way, here is a puzzle: " + gsm5.parts[0]
    data = tmp_path / "dpo.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    proc = cli("contamination-report", "--data", str(data), "--benchmarks", "gsm8k", "--benchmarks-dir", case["bench"],
               "--out", str(tmp_path / "r"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "r" / "report.json").read_text())
    assert r["sources"][str(data)] == {"rows_scanned": 30, "rows_unreadable": 0}
    [item] = r["items"]
    assert (item["item_id"], item["rows"], item["span"]["text"]) == (gsm5.item_id, 1, gsm5.parts[0])
    assert (item["span"]["field"], item["span"]["message"]) == ("chosen", 0)
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"| gsm8k | {gsm5.item_id} | " in md and "| chosen[0] | " + " ".join(gsm5.parts[0].split())[:40] in md
