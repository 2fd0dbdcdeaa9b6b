"""Pass checkpoints: Parquet output, a completion marker, and a fingerprint of what produced it.

A pass (one stage, or consecutive map stages fused into one Ray pass) is checkpointed under its
id; its marker holds the statistics of each of its stages. A stage's fingerprint chains the
fingerprint of its input, so changing one stage's config invalidates exactly the pass it is in
and the ones after it.

Checkpoints live beside the output, on local disk or in object storage, and object storage has
no rename: nothing is moved into place. Each attempt at a pass writes its files into a folder of
its own, `<pass>/<attempt>/`, and the marker `<pass>/_SUCCESS.json`, one object written last,
names the attempt it completes. Readers read only the attempt a marker names, so a run killed at
any moment leaves each pass either complete or absent: a re-run redoes the unfinished pass from
its (checkpointed) input, and no row is lost or written twice. Attempts that no marker names
(killed runs) and attempts a newer marker superseded are deleted.

An attempt is a few large files, not one per batch: at the size of a Common Crawl snapshot one
file per batch is tens of millions of objects, which every listing and open of the checkpoint
then pays for. Ray reads a file as one block on one worker, so a checkpoint read back is split,
streaming, into blocks sized for the workers of the next pass (`read_attempt`).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from typing import Any

from pipeline import storage
from pipeline.storage import Location

MARKER = "_SUCCESS.json"
SCHEMA_VERSION = 2
# A write task's rows in one row group, not one per block (Ray's default, about a hundred rows): a
# file's footer and the statistics scan's reads of a few narrow columns shrink with the row groups.
ROW_GROUP_ROWS = 65_536
# Rows a write task gathers into one file before it writes. A row of extracted web text takes about
# 3.4 KB in Parquet and 5.5 KB in memory (measured on the 990 shared pages), so a file is about
# 170 MB, in the 64-256 MB range object stores and Parquet readers handle well, and a snapshot's
# first pass is about 53,000 files instead of 38 million. Narrower rows make smaller files; a pass
# of fewer rows writes one file.
FILE_ROWS = 50_000
# A write task waits for FILE_ROWS rows; declared with a CPU, Ray Data reserves that CPU for the
# waiting write and a 2-CPU machine runs its pass on one worker (measured: 1 worker instead of 2).
# Writing a file is a small part of a pass's work.
WRITE_CPUS = 0
# Rows of a block read back from a checkpoint: as large as the stages' largest default batch
# (1,024 rows), or smaller when that would leave fewer than BLOCKS_PER_CPU blocks for each CPU of
# the cluster, so a small run keeps every worker busy to its end as well.
BLOCK_ROWS = 1_024
BLOCKS_PER_CPU = 4


def fingerprint(*parts: Any) -> str:
    blob = json.dumps([SCHEMA_VERSION, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Checkpoints:
    def __init__(self, output_dir: Location | str):
        self.root = storage.locate(output_dir) / ".pipeline" / "stages"
        self._writing: dict[str, Location] = {}  # pass -> the attempt this process wrote last
        self._rows_seen: dict[str, int] = {}

    def _marker(self, pass_id: str) -> dict | None:
        try:
            data = json.loads((self.root / pass_id / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("attempt") else None  # an older layout's marker: redo

    def done(self, pass_id: str, fp: str) -> dict | None:
        """The marker of a finished checkpoint with this fingerprint, or None."""
        data = self._marker(pass_id)
        return data if data and data.get("fingerprint") == fp else None

    def write(self, pass_id: str, dataset) -> Location:
        """Write a dataset as a new attempt at the pass; it counts once `mark` names it."""
        attempt = self.root / pass_id / uuid.uuid4().hex[:16]
        self._writing[pass_id] = attempt
        dataset.write_parquet(attempt.path, filesystem=attempt.fs, row_group_size=ROW_GROUP_ROWS,
                              min_rows_per_file=FILE_ROWS, ray_remote_args={"num_cpus": WRITE_CPUS})
        return attempt

    def rows_written(self, pass_id: str) -> int:
        """Rows in the files a running pass has finished so far, read from their Parquet footers: the
        live count a terminal shows. A file still being written is counted at the next look."""
        import pyarrow.parquet as pq

        attempt = self._writing.get(pass_id)
        if attempt is None:
            return 0
        total = 0
        for f in attempt.files():
            if f.path not in self._rows_seen:
                try:
                    self._rows_seen[f.path] = pq.read_metadata(f.path, filesystem=f.fs).num_rows
                except (OSError, ValueError):
                    continue
            total += self._rows_seen[f.path]
        return total

    def attempt(self, pass_id: str) -> Location | None:
        """The folder of the attempt the pass's marker names, or None."""
        data = self._marker(pass_id)
        return self.root / pass_id / data["attempt"] if data else None

    def read(self, pass_id: str):
        """A finished pass's checkpoint as a dataset."""
        return read_attempt(self.attempt(pass_id))

    def mark(self, pass_id: str, fp: str, record: dict) -> None:
        """Make the attempt this process wrote the pass's checkpoint, then delete the ones it supersedes."""
        attempt = self._writing[pass_id]
        marker = {"fingerprint": fp, "attempt": attempt.name, "stats": record}
        (self.root / pass_id / MARKER).write_text(json.dumps(marker, indent=1, default=str))
        self._remove_unnamed(pass_id, attempt.name)

    def clean_stale(self, keep: set[str]) -> None:
        """Remove attempts of killed runs, superseded attempts, and checkpoints of passes no longer in the config."""
        for child in self.root.children():
            if child.name in keep:
                named = self._marker(child.name)
                self._remove_unnamed(child.name, named["attempt"] if named else None)
            else:
                child.remove()

    def _remove_unnamed(self, pass_id: str, attempt: str | None) -> None:
        for child in (self.root / pass_id).children():
            if child.name not in (MARKER, attempt):
                child.remove()


def read_attempt(attempt: Location):
    """An attempt's files as a dataset, cut as it streams into blocks of `block_rows` rows: Ray reads a
    file as one block, which only one worker of the next pass would work on. A pass that kept and
    dropped nothing wrote no file."""
    import ray
    import ray.data

    files = [f for f in attempt.files() if f.suffix == ".parquet"]
    if not files:
        return ray.data.from_items([])
    rows = block_rows(files, ray.cluster_resources().get("CPU", 1))
    dataset = ray.data.read_parquet(attempt.path, filesystem=attempt.fs, file_extensions=["parquet"])
    return dataset.repartition(target_num_rows_per_block=rows)


def block_rows(files: list[Location], cpus: float) -> int:
    """BLOCK_ROWS, or fewer if the files hold fewer than BLOCKS_PER_CPU such blocks per CPU. Footers
    are read only until the rows reach that: one or a few requests, whatever the checkpoint's size."""
    import pyarrow.parquet as pq

    blocks = BLOCKS_PER_CPU * max(cpus, 1)
    rows = 0
    for f in files:
        rows += pq.read_metadata(f.path, filesystem=f.fs).num_rows
        if rows >= BLOCK_ROWS * blocks:
            return BLOCK_ROWS
    return max(1, math.ceil(rows / blocks))
