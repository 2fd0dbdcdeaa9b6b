"""Record parsing without Ray: every bad record becomes a quarantined row, good ones around it survive."""

from __future__ import annotations

import gzip
import io
import json
import random

import pyarrow as pa
import pytest

from pipeline.normalize import Normalizer, detect_kind, parse_dialogue
from pipeline.config import InputConfig
from pipeline.errors import UserError
from pipeline.readers import JsonlRanges, _first_json_record, _size, input_files, _parse_html_file, _parse_jsonl, _read_range, _warc_parser, lines_starting_in
from pipeline.records import DROP_REASON
from pipeline.storage import locate


def parse_jsonl(data: bytes, kind="document"):
    """Rows as the reader yields them: whole Arrow tables on the fast path, single rows where it fell back."""
    items = _parse_jsonl(io.BytesIO(data), "f.jsonl", Normalizer(kind, "src"))
    return [r for item in items for r in (item.to_pylist() if isinstance(item, pa.Table) else [item])]


def reasons(rows):
    return [r.get(DROP_REASON) for r in rows]


def test_jsonl_bad_lines_are_quarantined_and_the_rest_kept():
    data = b'{"text": "a"}\n{broken\n\xff\xfe\x00junk\n[1, 2]\n{"txt": "no text"}\n{"text": "b", "x": 1}\n'
    rows = parse_jsonl(data)
    assert reasons(rows) == [None, "bad_json", "invalid_utf8", "not_an_object", "missing_field:text", None]
    assert rows[-1]["text"] == "b" and json.loads(rows[-1]["meta"]) == {"x": 1}
    assert json.loads(rows[1]["meta"])["line"] == 2


def test_ranges_of_a_file_hold_each_line_once_wherever_the_cuts_fall():
    """Cuts inside a line, on a newline, on a line's first byte, a line longer than a range, no final
    newline: the ranges' lines, in order, are the file's lines, and each range says where its first starts."""
    rng = random.Random(3)
    lines = [b"x" * rng.choice([0, 1, 5, 40, 300]) for _ in range(200)]
    for ending in (b"\n", b""):
        data = b"\n".join(lines) + ending
        fh = pa.BufferReader(data)
        for trial in range(200):
            cuts = sorted({0, len(data), *(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 12)))})
            pieces = [lines_starting_in(fh, a, b, block=7) for a, b in zip(cuts[:-1], cuts[1:])]
            assert b"".join(p for _, p in pieces) == data, (cuts, ending)
            for first, piece in pieces:
                assert not piece or data[first:first + len(piece)] == piece and (first == 0 or data[first - 1:first] == b"\n")


def test_a_big_file_is_read_in_ranges_with_its_rows_in_order_and_bad_lines_located(tmp_path):
    lines = [json.dumps({"id": f"d{i}", "text": f"document {i} " + "word " * (i % 50)}).encode() for i in range(3000)]
    lines[2500] = b"{broken"
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    norm = Normalizer("document", "src")
    source = JsonlRanges([locate(str(path))], norm, range_bytes=20_000)
    tasks = source.get_read_tasks(1)
    assert len(tasks) > 10 and source.estimate_inmemory_data_size() == path.stat().st_size
    rows = [r for task in tasks for t in task() for r in t.to_pylist()]
    assert [r["id"] for r in rows if r[DROP_REASON] is None] == [f"d{i}" for i in range(3000) if i != 2500]
    bad = [r for r in rows if r[DROP_REASON] is not None]
    assert [r[DROP_REASON] for r in bad] == ["bad_json"]
    assert json.loads(bad[0]["meta"])["byte"] == sum(len(x) + 1 for x in lines[:2500])
    gz = tmp_path / "big.jsonl.gz"  # gzip cannot be entered in the middle: one task, its lines numbered
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=0))
    assert len(JsonlRanges([locate(str(gz))], norm, range_bytes=20_000).get_read_tasks(1)) == 1
    rows = [r for t in _read_range(locate(str(gz)), 0, None, norm) for r in t.to_pylist()]
    assert len(rows) == 3000 and json.loads(rows[2500]["meta"])["line"] == 2501


def test_small_files_share_read_tasks_and_a_big_one_is_split_alone(tmp_path):
    """Small files are read several to a task, in order, up to `task_bytes`; the ranges of a big file are
    tasks of their own; every row comes back once, in the order of the files."""
    def jsonl(name: str, n: int) -> object:
        path = tmp_path / name
        path.write_text("".join(json.dumps({"id": f"{name}:{i}", "text": "word " * 20}) + "\n" for i in range(n)))
        return locate(str(path))

    small = [jsonl(f"s{k:02d}.jsonl", 10) for k in range(30)]  # about 1.3 kB each
    big = jsonl("big.jsonl", 2000)  # about 270 kB: ranges of 20 kB
    files = small[:12] + [big] + small[12:]
    norm = Normalizer("document", "src")
    tasks = JsonlRanges(files, norm, range_bytes=20_000, task_bytes=5 * _size(small[0])).get_read_tasks(1)
    paths = [list(task.metadata.input_files) for task in tasks]
    assert [len(p) for p in paths if big.path not in p] == [5, 5, 2, 5, 5, 5, 3], "whole files packed, in order"
    assert all(p == [big.path] for p in paths if big.path in p) and sum(big.path in p for p in paths) > 10
    assert sum(task.metadata.size_bytes for task in tasks) == sum(map(_size, files))
    ids = [r["id"] for task in tasks for t in task() for r in t.to_pylist()]
    assert ids == [f"{f.path.rsplit('/', 1)[-1]}:{i}" for f in files for i in range(2000 if f is big else 10)]
    assert len(JsonlRanges(files, norm, range_bytes=20_000).get_read_tasks(1)) == len(paths) - 5, "32 MiB tasks: one"


def test_gzip_detected_by_content_and_truncation_quarantined():
    lines = b"".join(json.dumps({"text": f"doc {i}"}).encode() + b"\n" for i in range(2000))
    whole = gzip.compress(lines)
    assert reasons(parse_jsonl(whole)) == [None] * 2000
    rows = parse_jsonl(whole[: len(whole) // 2])
    assert reasons(rows)[-1] == "corrupt_gzip"
    good = [r for r in rows if r.get(DROP_REASON) is None]
    assert 0 < len(good) < 2000
    assert [r["text"] for r in good] == [f"doc {i}" for i in range(len(good))]


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def test_zstd_detected_by_content_and_truncation_quarantined(tmp_path):
    """The Pile's and SlimPajama's `.jsonl.zst`: read like gzip, as one task, a damaged end quarantined."""
    lines = b"".join(json.dumps({"text": f"doc {i}"}).encode() + b"\n" for i in range(20_000))
    whole = zstd(lines)
    assert [r["text"] for r in parse_jsonl(whole)] == [f"doc {i}" for i in range(20_000)]
    rows = parse_jsonl(whole[: len(whole) // 2])
    assert reasons(rows)[-1] == "corrupt_zstd"
    good = [r for r in rows if r.get(DROP_REASON) is None]
    assert 0 < len(good) < 20_000 and [r["text"] for r in good] == [f"doc {i}" for i in range(len(good))]
    path = tmp_path / "big.jsonl.zst"
    path.write_bytes(whole)
    assert len(JsonlRanges([locate(str(path))], Normalizer("document", "src"), range_bytes=1_000).get_read_tasks(1)) == 1
    assert _first_json_record([locate(str(path))]) == [{"text": "doc 0"}]


def test_fast_and_line_paths_agree():
    good = b"".join(json.dumps({"text": f"t{i}", "url": f"http://h{i}.org/", "extra": i}).encode() + b"\n" for i in range(50))
    fast = parse_jsonl(good)
    slow = parse_jsonl(good + b"{broken\n")[:-1]
    assert [{k: v for k, v in r.items() if v is not None} for r in fast] == slow
    assert json.loads(fast[3]["meta"]) == {"extra": 3} and fast[3]["domain"] == "h3.org"


def test_a_json_array_file_is_read_as_its_records(tmp_path):
    """Alpaca's `alpaca_data.json` is an indented JSON array: each element is a record, located by its
    position; the kind is found from the first element; a big one is one task, gzipped or not."""
    records = [{"instruction": f"Name {i} colours.", "input": "", "output": "Red, blue."} for i in range(3000)]
    text = json.dumps(records[:2] + [5] + records[2:], indent=4).encode()
    rows = parse_jsonl(b"\xef\xbb\xbf" + text, kind="instruction")
    assert reasons(rows) == [None, None, "not_an_object"] + [None] * 2998
    assert json.loads(rows[2]["meta"]) == {"item": 2, "path": "f.jsonl", "value": "5"}
    assert rows[0]["messages"][0]["content"] == "Name 0 colours."
    assert reasons(parse_jsonl(gzip.compress(text), kind="instruction")) == reasons(rows)
    assert reasons(parse_jsonl(text[:-5], kind="instruction")) == ["bad_json"]  # one document: damage loses it
    assert reasons(parse_jsonl(b"[]")) == ["empty_file"]
    path = tmp_path / "alpaca_data.json"
    path.write_bytes(text)
    assert _first_json_record([locate(str(path))]) == [records[0]]
    assert len(JsonlRanges([locate(str(path))], Normalizer("instruction", "src"), range_bytes=20_000).get_read_tasks(1)) == 1


def test_empty_file_is_reported():
    assert reasons(parse_jsonl(b"")) == ["empty_file"]


def test_ids_are_content_derived_and_stable():
    a = parse_jsonl(b'{"text": "same", "url": "http://x.org/a"}\n')[0]
    b = parse_jsonl(b'{"url": "http://x.org/a", "text": "same"}\n')[0]
    c = parse_jsonl(b'{"text": "same", "url": "http://x.org/b"}\n')[0]
    assert a["id"] == b["id"] != c["id"]
    assert a["domain"] == "x.org"
    assert parse_jsonl(b'{"text": "t", "id": 7}\n')[0]["id"] == "7"


@pytest.mark.parametrize("record, kind", [
    ({"text": "x"}, "document"),
    ({"messages": []}, "instruction"),
    ({"instruction": "x", "output": "y"}, "instruction"),
    ({"prompt": "x", "response": "y"}, "instruction"),
    ({"chosen": "x", "rejected": "y"}, "preference"),
])
def test_kind_detection(record, kind):
    assert detect_kind(record, {}) == kind


def test_instruction_formats_map_to_messages():
    norm = Normalizer("instruction", "seeds")
    seed = norm.row({"instruction": "Add the numbers.", "instances": [{"input": "2 3", "output": "5"}],
                     "is_classification": False})
    assert seed["messages"] == [{"role": "user", "content": "Add the numbers.\n\n2 3"},
                                {"role": "assistant", "content": "5"}]
    assert json.loads(seed["meta"])["is_classification"] is False
    alpaca = norm.row({"instruction": "Say hi", "input": "", "output": "hi"})
    assert alpaca["messages"][0]["content"] == "Say hi" and alpaca["generated_by"] == "human"
    assert norm.row({"messages": [{"role": "user"}]})[DROP_REASON] == "missing_field:messages.role/content"


def test_field_mapping():
    row = Normalizer("document", "s", {"text": "body", "id": "key"}).row({"body": "hello", "key": "k1"})
    assert (row["text"], row["id"]) == ("hello", "k1")


def test_hh_dialogues_become_prompt_chosen_rejected():
    chosen = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Fine, thanks."
    rejected = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Go away."
    row = Normalizer("preference", "hh").row({"chosen": chosen, "rejected": rejected})
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user"]
    assert row["chosen"] == [{"role": "assistant", "content": "Fine, thanks."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Go away."}]
    assert parse_dialogue("Human: a\n\nAssistant: b")[1]["content"] == "b"


def test_warc_files_from_shared_data(shared_data):
    parse = _warc_parser(["response"], ["text/html", "application/xhtml+xml"])
    found = {}
    for path in sorted((shared_data / "warc").glob("*.*arc*")):
        with open(path, "rb") as f:
            found[path.name] = list(parse(f, str(path), Normalizer("html", "warc")))
    assert any(rows and all(r.get(DROP_REASON) is None for r in rows) for rows in found.values())
    html_rows = [r for rows in found.values() for r in rows if r.get(DROP_REASON) is None]
    assert html_rows and all(r["url"].startswith("http") and isinstance(r["html"], bytes) for r in html_rows)
    arc = [n for n in found if n.endswith(".arc.gz")]
    assert arc and found[arc[0]], "ARC records are read too"


def test_truncated_warc_keeps_earlier_records(shared_data):
    path = max((shared_data / "warc").glob("*.warc.gz"), key=lambda p: p.stat().st_size)
    data = path.read_bytes()
    parse = _warc_parser(["response"], [])
    whole = list(parse(io.BytesIO(data), "w", Normalizer("html", "warc")))
    cut = list(parse(io.BytesIO(data[: len(data) * 2 // 3]), "w", Normalizer("html", "warc")))
    assert reasons(cut)[-1] in ("corrupt_warc", "truncated_warc")
    assert 0 < len([r for r in cut if r.get(DROP_REASON) is None]) < len(whole)


def test_html_file_gzip_zstd_and_plain(tmp_path):
    norm = Normalizer("html", "pages")
    page = b"<html><body><p>Hello</p></body></html>"
    assert list(_parse_html_file(io.BytesIO(gzip.compress(page)), str(tmp_path / "a.gz"), norm))[0]["html"] == page
    assert list(_parse_html_file(io.BytesIO(zstd(page)), str(tmp_path / "a.html.zst"), norm))[0]["html"] == page
    assert list(_parse_html_file(io.BytesIO(page), str(tmp_path / "a.html"), norm))[0]["url"].startswith("file://")


def test_quarantined_records_keep_their_origin():
    """Where a bad record was (path, line), its own id and every key it had, `text` included:
    enough to find it in the input and see what it held instead of what we needed."""
    data = b'{"text": "fine"}\n{"text": null, "id": "doc-7", "title": "T"}\n{"text": 3, "body": "x"}\n'
    rows = parse_jsonl(data)
    assert reasons(rows) == [None, "missing_field:text", "not_a_string:text"]
    first, second = (json.loads(r["meta"]) for r in rows[1:])
    assert first == {"path": "f.jsonl", "line": 2, "id": "doc-7", "keys": ["id", "text", "title"]}
    assert second == {"path": "f.jsonl", "line": 3, "keys": ["body", "text"], "type": "int", "value": "3"}


def test_different_bad_records_never_share_an_id():
    norm = Normalizer("document", "src")
    a = norm.row({"body": "one"})
    b = norm.row({"body": "two"})
    c = norm.row({"body": "one"}, {"path": "f.jsonl", "line": 9})
    assert a[DROP_REASON] == b[DROP_REASON] == c[DROP_REASON] == "missing_field:text"
    assert len({a["id"], b["id"], c["id"]}) == 3
    lines = parse_jsonl(b'[1]\n[1]\n')
    assert reasons(lines) == ["not_an_object"] * 2 and lines[0]["id"] != lines[1]["id"]



def test_arc_records_get_the_same_id_on_every_read(shared_data):
    """warcio gives a converted ARC record a random WARC-Record-ID each time: the row's id comes from the capture."""
    parse = _warc_parser(["response"], [])
    reads = []
    for _ in range(2):
        with open(shared_data / "warc" / "example.arc.gz", "rb") as f:
            reads.append(list(parse(f, "example.arc.gz", Normalizer("html", "warc"))))
    assert reads[0] and [r["id"] for r in reads[0]] == [r["id"] for r in reads[1]]
    assert reads[0][0]["url"].startswith("http") and json.loads(reads[0][0]["meta"])["warc_record_id"] is None


def test_the_runs_own_output_is_never_input(tmp_path):
    (tmp_path / "out" / "data_jsonl").mkdir(parents=True)
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "out" / "data_jsonl" / "part-0.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "outer.jsonl").write_text('{"text": "b"}\n')  # a name that starts like the output's is not in it
    config = InputConfig(format="jsonl", paths=[str(tmp_path)])
    assert [f.name for f in input_files(config, locate(tmp_path / "out"))] == ["a.jsonl", "outer.jsonl"]
    assert len(input_files(config)) == 3
    with pytest.raises(UserError, match="every file of .* is in the output folder"):
        input_files(InputConfig(format="jsonl", paths=[str(tmp_path / "out")]), locate(tmp_path / "out"))


def test_a_folder_reads_the_files_of_its_format_and_says_what_it_left_out(tmp_path):
    """A dataset repository's folder: its README and script are not data; Hadoop's parts have no suffix."""
    for name in ("a.jsonl", "b.jsonl.zst", "c.json.gz", "README.md", "load.py"):
        (tmp_path / "repo" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "repo" / name).write_text("x")
    notes = []
    config = InputConfig(format="jsonl", paths=[str(tmp_path / "repo")])
    assert [f.name for f in input_files(config, note=notes.append)] == ["a.jsonl", "b.jsonl.zst", "c.json.gz"]
    assert notes == [f"{tmp_path / 'repo'}: read its 3 jsonl files, left out 2 other (README.md, load.py)"]
    named = InputConfig(format="jsonl", paths=[str(tmp_path / "repo" / "README.md"), str(tmp_path / "repo" / "*.py")])
    assert [f.name for f in input_files(named)] == ["README.md", "load.py"], "files named, or globbed, are read"
    (tmp_path / "parts").mkdir()
    for name in ("part-00000", "part-00001"):
        (tmp_path / "parts" / name).write_text("x")
    assert len(input_files(InputConfig(format="jsonl", paths=[str(tmp_path / "parts")]))) == 2
