"""The storage layer on local disk and on a real S3 server: the same calls, the same answers."""

from __future__ import annotations

import pytest

from pipeline import storage
from pipeline.errors import UserError


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return storage.locate(tmp_path / "root")
    return storage.locate(request.getfixturevalue("s3_bucket") + "/root")


def test_write_read_list_and_remove(root):
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.jsonl").write_bytes(b'{"x": 1}\n')
    (root / "sub" / "deeper" / "c.jsonl").write_text("{}\n")
    (root / "sub" / "_SUCCESS").write_text("")
    (root / ".hidden" / "d.txt").write_text("no")
    assert (root / "a.txt").read_text() == "alpha" and (root / "a.txt").size() == 5
    assert [f.relative_to(root) for f in root.files()] == ["a.txt", "sub/b.jsonl", "sub/deeper/c.jsonl"]
    assert len(root.files(hidden=True)) == 5
    assert [c.name for c in (root / "sub").children()] == ["_SUCCESS", "b.jsonl", "deeper"]
    assert (root / "sub").is_dir() and (root / "a.txt").is_file() and not (root / "none").exists()
    (root / "sub").remove()
    assert not (root / "sub").exists() and [f.name for f in root.files()] == ["a.txt"]
    (root / "none").remove()  # nothing there is nothing to do


def test_globs_folders_and_misses(root):
    for name in ("x/1.jsonl", "x/2.jsonl", "x/y/3.jsonl", "x/4.txt", "x/.5.jsonl"):
        (root / name).write_text("{}\n")
    names = lambda locs: [loc.relative_to(root) for loc in locs]  # noqa: E731
    assert names(storage.expand([f"{root.uri}/x/*.jsonl"], "input")) == ["x/1.jsonl", "x/2.jsonl"]
    assert names(storage.expand([f"{root.uri}/x/**/*.jsonl"], "input")) == ["x/1.jsonl", "x/2.jsonl", "x/y/3.jsonl"]
    assert names(storage.expand([f"{root.uri}/x"], "input")) == ["x/1.jsonl", "x/2.jsonl", "x/4.txt", "x/y/3.jsonl"]
    with pytest.raises(UserError, match=r"input: no file matches '.*/x/\*\.parquet'"):
        storage.expand([f"{root.uri}/x/*.parquet"], "input")


def test_move_copy_and_a_local_copy(root, tmp_path):
    (root / "m" / "f.bin").write_bytes(b"\x00\x01")
    (root / "m" / "f.bin").move_to(root / "n" / "g.bin")
    assert not (root / "m" / "f.bin").exists() and (root / "n" / "g.bin").read_bytes() == b"\x00\x01"
    local = storage.locate(tmp_path / "model")
    (local / "w.txt").write_text("weights")
    local.copy_to(root / "uploaded")
    assert (root / "uploaded" / "w.txt").read_text() == "weights"
    with storage.local_copy(root / "uploaded" / "w.txt") as path:
        assert path.read_text() == "weights"


def test_a_missing_bucket_and_an_unwritable_place_are_named(s3_bucket, tmp_path, monkeypatch):
    from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET

    assert storage.probe_writable(storage.locate(s3_bucket + "/out")) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READ_ONLY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READ_ONLY_SECRET)
    why = storage.probe_writable(storage.locate(s3_bucket + "/out"))
    assert why and "\n" not in why and "denied" in why.lower()
    with pytest.raises(UserError, match="no-such-bucket-here"):
        storage.expand(["s3://no-such-bucket-here/x/*.jsonl"], "input.paths")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert storage.probe_writable(storage.locate(blocker / "out"))


def test_locations_name_what_the_user_wrote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = storage.locate("out/run1")
    assert rel.uri == "out/run1" and rel.path == str(tmp_path / "out" / "run1") and rel.is_local
    assert (rel / "data").uri == "out/run1/data" and rel.parent.uri == "out" and (rel / "x.parquet").suffix == ".parquet"
    assert storage.locate("m.bin").parent.uri == "." and storage.locate("m.bin").parent.path == str(tmp_path)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # no request to find the bucket's region
    remote = storage.locate("s3://bucket/prefix/")
    assert remote.uri == "s3://bucket/prefix" and remote.path == "bucket/prefix" and not remote.is_local
    assert storage.locate("file://" + str(tmp_path)).is_local


def test_text_is_read_as_lines_and_gzip_by_name(root):
    import gzip

    text = 'a,b\r\n1,"two\nlines"\n'
    for name, data in (("t.csv", text.encode()), ("t.csv.gz", gzip.compress(text.encode()))):
        target = root / name
        target.parent.make_dir()
        with root.fs.open_output_stream(target.path, compression=None) as f:  # the bytes as given, on any store
            f.write(data)
        with storage.open_text(target, newline="") as f:
            assert f.read() == text
        with storage.open_text(target) as f:
            assert list(f) == ["a,b\n", '1,"two\n', 'lines"\n']


def test_gzip_files_are_stored_read_and_copied_byte_for_byte(root, tmp_path):
    """A .gz name changes nothing: a gzipped WARC's members, a gzipped block list, come back as written."""
    import gzip

    data = gzip.compress(b"first member") + gzip.compress(b"second member")
    (root / "x.warc.gz").write_bytes(data)
    assert (root / "x.warc.gz").read_bytes() == data and (root / "x.warc.gz").size() == len(data)
    (root / "x.warc.gz").copy_to(storage.locate(tmp_path / "down" / "x.warc.gz"))
    assert (tmp_path / "down" / "x.warc.gz").read_bytes() == data
    with storage.local_copy(root / "x.warc.gz") as path:
        assert path.read_bytes() == data


def test_store_errors_name_the_uri_and_the_cause_in_a_few_words(s3_bucket, monkeypatch):
    """pyarrow's S3 errors are a paragraph (the operation, the key, a request id); a user reads the cause."""
    from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET
    from tests.ports import free_port

    (storage.locate(s3_bucket) / "x.txt").write_text("x")
    assert storage.file_problem(f"{s3_bucket}/x.txt") is None and storage.file_problem(s3_bucket, folder=True) is None
    assert storage.file_problem(f"{s3_bucket}/y.txt") == f"not found: {s3_bucket}/y.txt"
    assert storage.file_problem("s3://no-such-bucket-here/y.txt") == \
        "not found: s3://no-such-bucket-here/y.txt (there is no bucket 'no-such-bucket-here')"
    assert storage.missing_bucket(s3_bucket + "/y.txt") is None and storage.missing_bucket("/tmp/y.txt") is None

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READ_ONLY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READ_ONLY_SECRET)
    assert storage.probe_writable(storage.locate(s3_bucket + "/out")) == "Access Denied"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    assert storage.file_problem(f"{s3_bucket}/x.txt") == f"{s3_bucket}/x.txt: access denied"
    with pytest.raises(UserError) as denied:
        storage.expand([f"{s3_bucket}/*.txt"], "input.paths")
    assert str(denied.value) == f"input.paths: {s3_bucket}: access denied"

    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    assert storage.file_problem(f"{s3_bucket}/x.txt") == f"{s3_bucket}/x.txt: Could not connect to server (127.0.0.1:{port})"


def test_expanded_files_carry_the_size_and_time_their_listing_gave(root):
    """A run fingerprints its inputs by size and modification time: from the listing, not a request per file."""
    for name, text in (("x/1.jsonl", "{}\n"), ("x/2.jsonl", "{}\n{}\n"), ("y/3.txt", "abc"), ("z.txt", "z")):
        (root / name).write_text(text)
    found = storage.expand([f"{root.uri}/x/*.jsonl", f"{root.uri}/y", f"{root.uri}/z.txt"], "input")
    assert [f.stat for f in found] == [(f.size(), f.info().mtime_ns) for f in found]
    assert [f.stat[0] for f in found] == [3, 6, 3, 1]
