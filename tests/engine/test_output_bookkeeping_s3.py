"""The output's own bookkeeping on local disk and on a real S3 server, where nothing can be renamed:
a checkpoint counts once its marker names it, and an output counts as finished once its manifest
is written. These rules run on the driver, so they are tested here without Ray; whole runs on S3
(rows, statistics, rejects, resume after SIGKILL) are in tests/e2e/test_outputs_s3.py."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import checkpoint, output_dir, stats, storage
from pipeline.records import CHARS, DROP_REASON, DROP_STAGE, TOKENS
from pipeline.runner import _complete


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return storage.locate(tmp_path / "out")
    return storage.locate(request.getfixturevalue("s3_bucket")) / "out"


def rows(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"id": [f"r{offset + i}" for i in range(n)], DROP_STAGE: pa.nulls(n, pa.string()),
                     DROP_REASON: pa.nulls(n, pa.string()), TOKENS: [1] * n, CHARS: [2] * n})


class Written:
    """What `Checkpoints.write` is given: a dataset whose `write_parquet(path, filesystem=)` writes files
    (here with pyarrow, on the driver; Ray Data's writer is exercised by the end-to-end tests)."""

    def __init__(self, *tables: pa.Table):
        self.tables = tables

    def write_parquet(self, path: str, filesystem, **options):
        filesystem.create_dir(path)  # as Ray's writer does
        for i, table in enumerate(self.tables):
            with filesystem.open_output_stream(f"{path}/{i:04d}.parquet") as f:
                pq.write_table(table, f)


def ids_of(attempt) -> list[str]:
    return sorted(i for t in stats.scan(attempt, ["id"]) for i in t.column("id").to_pylist())


def test_a_checkpoint_is_the_attempt_its_marker_names(root):
    ckpts = checkpoint.Checkpoints(root)
    first = ckpts.write("01-length", Written(rows(3), rows(2, 3)))
    assert ckpts.done("01-length", "fp1") is None, "written but not marked: not a checkpoint yet"
    ckpts.mark("01-length", "fp1", [{"id": "01-length"}])
    assert ckpts.done("01-length", "fp1")["stats"] == [{"id": "01-length"}]
    assert ckpts.done("01-length", "fp2") is None

    killed = checkpoint.Checkpoints(root)  # a run killed while it wrote a second attempt at the pass
    half = killed.write("01-length", Written(rows(7, 100)))
    assert killed.rows_written("01-length") == 7  # the live count sees the attempt in progress
    (root / ".pipeline" / "stages" / "02-gone" / "x" / "0.parquet").write_bytes(b"")

    rerun = checkpoint.Checkpoints(root)
    assert rerun.attempt("01-length") == first and rerun.done("01-length", "fp1")
    assert ids_of(rerun.attempt("01-length")) == [f"r{i}" for i in range(5)]
    rerun.clean_stale({"01-length"})
    assert not half.exists() and first.exists(), "the unmarked attempt goes, the named one stays"
    assert [c.name for c in rerun.root.children()] == ["01-length"], "a pass no longer in the config goes"

    third = rerun.write("01-length", Written(rows(1, 200)))
    rerun.mark("01-length", "fp3", [])
    assert rerun.attempt("01-length") == third and not first.exists(), "a superseded attempt goes"
    assert sorted(c.name for c in (rerun.root / "01-length").children()) == sorted([checkpoint.MARKER, third.name])
    assert ids_of(third) == ["r200"]


def test_a_marker_of_the_layout_before_attempts_is_redone(root):
    """Earlier checkpoints kept their files beside the marker and were renamed into place."""
    pass_dir = root / ".pipeline" / "stages" / "01-length"
    with (pass_dir / "0.parquet").open_write() as f:
        pq.write_table(rows(2), f)
    (pass_dir / checkpoint.MARKER).write_text(json.dumps({"fingerprint": "fp1", "stats": []}))
    ckpts = checkpoint.Checkpoints(root)
    assert ckpts.done("01-length", "fp1") is None
    ckpts.clean_stale({"01-length"})
    assert [c.name for c in pass_dir.children()] == [checkpoint.MARKER]


def finished_output(out, fingerprint: str) -> None:
    for name in ("part-00000-of-00002.parquet", "part-00001-of-00002.parquet"):
        with (out / "data" / name).open_write() as f:
            pq.write_table(rows(2), f)
    (out / "stats.json").write_text(json.dumps({"rows_out": 4}))
    (out / output_dir.WORK / output_dir.OWNED).write_text("[]")
    (out / "manifest.json").write_text(json.dumps({"fingerprint": fingerprint, "files": [
        {"path": "data/part-00000-of-00002.parquet"}, {"path": "data/part-00001-of-00002.parquet"}]}))


def test_an_output_is_finished_once_its_manifest_is_written(root):
    finished_output(root, "fp")
    assert _complete(root, "fp") == {"rows_out": 4}
    assert _complete(root, "other") is None
    (root / "data" / "part-00001-of-00002.parquet").remove()
    assert _complete(root, "fp") is None, "a listed shard is missing"


def test_a_swap_of_shards_cut_short_is_redone_and_its_files_stay_ours(root):
    """A run killed while its new shards replace the old ones: the re-run must not answer 'already
    complete' from the old manifest, nor refuse the folder for files it does not recognise."""
    finished_output(root, "fp")
    written = root / output_dir.WORK / "write-1234"
    with (written / "data" / "000000.parquet").open_write() as f:
        pq.write_table(rows(3), f)
    moves = [(written / "data" / "000000.parquet", "data/part-00000-of-00003.parquet"),
             (written / "data" / "000001.parquet", "data/part-00001-of-00003.parquet")]  # never written: the kill
    with pytest.raises(OSError):
        output_dir.swap_in(root, ["parquet"], moves)
    assert (root / "data" / "part-00000-of-00003.parquet").exists()
    assert _complete(root, "fp") is None

    output_dir.refuse_foreign(root, ["parquet"], overwrite=False)  # the re-run: nothing foreign
    logs = output_dir.claim(root, ["parquet"], [])
    assert logs.parent == root / "logs"
    assert not written.exists(), "the killed run's unfinished shards are removed"
