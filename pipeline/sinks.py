"""The output sink: one pass writes kept rows to the shards, dropped rows to rejects, and counts both.

Writing shards, writing rejects, counting and picking examples of dropped rows would otherwise
be passes of their own over the data. Each write task routes its rows itself and returns a small
statistics summary and a few dropped rows per reason, which Ray hands back to the driver in
`on_write_complete`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data.block import BlockAccessor
from ray.data.datasource import Datasink

from pipeline import examples
from pipeline.records import CHARS, DROP_REASON, DROP_STAGE, INTERNAL_COLUMNS, TOKENS
from pipeline.stats import Summary

EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl"}


class RoutingSink(Datasink):
    def __init__(self, data_dirs: dict[str, Path], rejects_dir: Path | None, stage_id: str,
                 min_rows: int | None = None, min_bytes: int | None = None):
        self.data_dirs = {fmt: Path(d) for fmt, d in data_dirs.items()}
        self.rejects_dir = Path(rejects_dir) if rejects_dir else None
        self.stage_id = stage_id
        self._min_rows = min_rows
        self._min_bytes = min_bytes
        self.summary: Summary | None = None
        self.examples: dict[str, dict[str, list[dict]]] = {}  # {stage: {reason: [row, ...]}}, see pipeline.examples

    @property
    def min_rows_per_write(self) -> int | None:
        return self._min_rows

    @property
    def min_bytes_per_write(self) -> int | None:
        return self._min_bytes

    def on_write_start(self, schema=None) -> None:
        for d in self.data_dirs.values():
            d.mkdir(parents=True, exist_ok=True)

    def write(self, blocks, ctx) -> dict:
        tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
        tables = [t for t in tables if t.num_rows] or tables[:1]
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        summary = Summary(self.stage_id)
        if DROP_REASON not in table.column_names:
            table = table.append_column(DROP_REASON, pa.nulls(table.num_rows, pa.string()))
        if all(c in table.column_names for c in (DROP_STAGE, TOKENS, CHARS)):
            summary.add(table)
        kept_mask = pc.is_null(table.column(DROP_REASON))
        kept = table.filter(kept_mask).drop_columns([c for c in INTERNAL_COLUMNS if c in table.column_names])
        name = f"{ctx.task_idx:06d}"
        for fmt, directory in self.data_dirs.items():
            _write(kept, directory / f"{name}.{EXTENSIONS[fmt]}", fmt)
        dropped = table.filter(pc.invert(kept_mask))
        stages = pc.fill_null(dropped.column(DROP_STAGE) if DROP_STAGE in dropped.column_names
                              else pa.nulls(dropped.num_rows, pa.string()), self.stage_id)
        if self.rejects_dir is not None:
            for stage in pc.unique(stages).to_pylist():
                part = dropped.filter(pc.equal(stages, stage))
                part = part.drop_columns([c for c in (TOKENS, CHARS, DROP_STAGE) if c in part.column_names])
                part = part.rename_columns(["reason" if c == DROP_REASON else c for c in part.column_names])
                part = part.append_column("stage", pa.array([stage] * part.num_rows, pa.string()))
                target = self.rejects_dir / stage
                target.mkdir(parents=True, exist_ok=True)
                _write(part, target / f"{name}.parquet", "parquet")
        columns = [c for c in dropped.column_names if c not in INTERNAL_COLUMNS]
        return {**summary.to_dict(), "examples": examples.pick(dropped, stages, dropped.column(DROP_REASON), columns)}

    def on_write_complete(self, write_result) -> None:
        self.summary = Summary.merged(self.stage_id, write_result.write_returns)
        self.examples = examples.merge(part["examples"] for part in write_result.write_returns)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path)
        return
    with open(path, "w", encoding="utf-8") as f:
        for row in table.to_pylist():
            f.write(json.dumps(row, ensure_ascii=False, default=_bytes_as_text) + "\n")


def _bytes_as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def name_shards(directory: Path) -> list[Path]:
    """Drop empty shards (keeping one, for the schema) and name the rest `part-00000-of-00004.ext` in task order."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    nonempty = [p for p in files if not _is_empty(p)] or files[:1]
    for p in files:
        if p not in nonempty:
            p.unlink()
    named = []
    for i, p in enumerate(nonempty):
        target = p.with_name(f"part-{i:05d}-of-{len(nonempty):05d}{p.suffix}")
        p.rename(target)
        named.append(target)
    return named


def _is_empty(path: Path) -> bool:
    if path.suffix == ".parquet":
        return pq.read_metadata(path).num_rows == 0
    return path.stat().st_size == 0
