"""The output sink: one pass writes kept rows to the shards, dropped rows to rejects, and counts both.

Writing shards, writing rejects, counting, picking examples of dropped rows and hashing the files
for the manifest would otherwise be passes of their own over the data (on object storage, each a
download of the whole output). Each write task routes its rows itself, hashes every file as it
streams out, and returns a small statistics summary, the files it wrote (rows, bytes, sha256) and
a few dropped rows per reason, which Ray hands back to the driver in `on_write_complete`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data.block import BlockAccessor
from ray.data.datasource import Datasink

from pipeline import examples, storage
from pipeline.records import CHARS, DROP_REASON, DROP_STAGE, INTERNAL_COLUMNS, TOKENS, live_mask
from pipeline.stats import Summary
from pipeline.storage import Location

EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl"}


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A file a write task wrote, with what the manifest says of it."""

    location: Location
    rows: int
    bytes: int
    sha256: str
    columns: tuple[str, ...]


class RoutingSink(Datasink):
    def __init__(self, data_dirs: dict[str, Location | str | os.PathLike], rejects_dir: Location | str | os.PathLike | None,
                 stage_id: str, min_rows: int | None = None, min_bytes: int | None = None):
        self.data_dirs = {fmt: storage.locate(d) for fmt, d in data_dirs.items()}
        self.rejects_dir = storage.locate(rejects_dir) if rejects_dir is not None else None
        self.stage_id = stage_id
        self._min_rows = min_rows
        self._min_bytes = min_bytes
        self.summary: Summary | None = None
        self.examples: dict[str, dict[str, list[dict]]] = {}  # {stage: {reason: [row, ...]}}, see pipeline.examples
        self.files: dict[Location, list[WrittenFile]] = {}  # {folder: its files in task order}

    @property
    def min_rows_per_write(self) -> int | None:
        return self._min_rows

    @property
    def min_bytes_per_write(self) -> int | None:
        return self._min_bytes

    def write(self, blocks, ctx) -> dict:
        tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
        tables = [t for t in tables if t.num_rows] or tables[:1]
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        summary = Summary(self.stage_id)
        if DROP_REASON not in table.column_names:
            table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, pa.string()))
        if all(c in table.column_names for c in (DROP_STAGE, TOKENS, CHARS)):
            summary.add(table)
        kept_mask = live_mask(table)
        kept = table.filter(kept_mask).drop_columns([c for c in INTERNAL_COLUMNS if c in table.column_names])
        name = f"{ctx.task_idx:06d}"
        files = [_write(kept, directory / f"{name}.{EXTENSIONS[fmt]}", fmt) for fmt, directory in self.data_dirs.items()]
        dropped = table.filter(pc.invert(kept_mask))
        stages = pc.fill_null(dropped.column(DROP_STAGE) if DROP_STAGE in dropped.column_names
                              else pa.nulls(dropped.num_rows, pa.string()), self.stage_id)
        if self.rejects_dir is not None:
            for stage, part in _by_stage(tables, self.stage_id).items():
                part = part.drop_columns([c for c in (TOKENS, CHARS, DROP_STAGE) if c in part.column_names])
                part = part.rename_columns(["reason" if c == DROP_REASON else c for c in part.column_names])
                part = part.append_column("stage", pa.array([stage] * part.num_rows, pa.string()))
                files.append(_write(part, self.rejects_dir / stage / f"{name}.parquet", "parquet"))
        columns = [c for c in dropped.column_names if c not in INTERNAL_COLUMNS]
        return {**summary.to_dict(), "files": files,
                "examples": examples.pick(dropped, stages, dropped.column(DROP_REASON), columns)}

    def on_write_complete(self, write_result) -> None:
        self.summary = Summary.merged(self.stage_id, write_result.write_returns)
        self.examples = examples.merge(part["examples"] for part in write_result.write_returns)
        files = sorted((f for part in write_result.write_returns for f in part["files"]), key=lambda f: f.location.path)
        self.files = {}
        for f in files:
            self.files.setdefault(f.location.parent, []).append(f)


def _by_stage(tables: list[pa.Table], stage_id: str) -> dict[str, pa.Table]:
    """Each stage's dropped rows with the columns of the blocks they came from: a task's blocks may
    come from several passes' outputs, and their union's columns are no stage's."""
    parts: dict[str, list[pa.Table]] = {}
    for t in tables:
        if DROP_REASON not in t.column_names:
            continue
        dropped = t.filter(pc.invert(live_mask(t)))
        stages = pc.fill_null(dropped.column(DROP_STAGE) if DROP_STAGE in dropped.column_names
                              else pa.nulls(dropped.num_rows, pa.string()), stage_id)
        for stage in pc.unique(stages).to_pylist():
            parts.setdefault(stage, []).append(dropped.filter(pc.equal(stages, stage)))
    return {s: pa.concat_tables(p, promote_options="permissive") for s, p in parts.items()}


class _Hashing:
    """A write stream that hashes and counts what passes through it on the way out."""

    def __init__(self, stream):
        self.stream, self.sha256, self.bytes, self.closed = stream, hashlib.sha256(), 0, False

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += memoryview(data).nbytes
        return self.stream.write(data)

    def flush(self) -> None:
        pass


def _write(table: pa.Table, target: Location, fmt: str) -> WrittenFile:
    with target.open_write() as f:
        out = _Hashing(f)
        if fmt == "parquet":
            pq.write_table(table, out)
        else:
            for batch in table.to_batches(max_chunksize=1024):
                out.write("".join(json.dumps(row, ensure_ascii=False, default=_bytes_as_text) + "\n"
                                  for row in batch.to_pylist()).encode("utf-8"))
    return WrittenFile(target, table.num_rows, out.bytes, out.sha256.hexdigest(), tuple(table.column_names))


def _bytes_as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def shard_names(files: list[WrittenFile]) -> list[tuple[WrittenFile, str]]:
    """The files of one folder worth keeping and their final names: empty shards go (one stays, for
    the schema), the rest are named `part-00000-of-00004.ext` in task order."""
    nonempty = [f for f in files if f.rows] or files[:1]
    return [(f, f"part-{i:05d}-of-{len(nonempty):05d}{f.location.suffix}") for i, f in enumerate(nonempty)]
