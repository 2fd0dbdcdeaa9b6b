"""Run statistics: per-stage rows and tokens, kept and dropped by reason, and length histograms.

Workers measure every row as it leaves a stage (`measure`: `_tokens` and `_chars` columns), so
counting afterwards only needs four narrow columns: rows, tokens and lengths grouped by the
stage and reason that dropped them. Those are read straight from the checkpoint's Parquet
files (a columnar scan, no Ray job), or streamed from the object store when checkpoints are off.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import (CHARS, DROP_REASON, DROP_STAGE, TOKENS, live_mask, messages_text, set_column, text_column,
                              whitespace_tokens)
from pipeline.normalize import READ_STAGE
from pipeline.storage import Location

# Log-spaced character-length bins shared by every batch, so partial histograms add up.
LENGTH_BINS = [0, 1, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 10**9]
COLUMNS = [DROP_STAGE, DROP_REASON, TOKENS, CHARS]


@functools.lru_cache(maxsize=2)
def tokenizer_of(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def _texts(batch: pa.Table) -> list[str] | None:
    names = batch.column_names
    if "text" in names or "messages" in names:
        return text_column(batch)
    if "prompt" in names and "chosen" in names:
        return [messages_text((p or []) + (c or []), "conversation")
                for p, c in zip(batch.column("prompt").to_pylist(), batch.column("chosen").to_pylist())]
    return None


def measure(batch: pa.Table, tokenizer: str | None) -> pa.Table:
    """Add `_tokens` and `_chars` of each row's text (null where a row has no text yet, e.g. raw HTML)."""
    if "text" in batch.column_names and "messages" not in batch.column_names:
        arr = pc.fill_null(batch.column("text"), "")  # documents: vectorised, no Python per row
    else:
        texts = _texts(batch)
        if texts is None:
            nulls = pa.nulls(batch.num_rows, pa.int64())
            return set_column(set_column(batch, TOKENS, nulls), CHARS, nulls)
        arr = pa.array(texts, pa.string())
    if tokenizer is None:
        tokens = pc.cast(whitespace_tokens(arr), pa.int64())
    else:
        ids = tokenizer_of(tokenizer)(arr.to_pylist(), add_special_tokens=False)["input_ids"]
        tokens = pa.array([len(i) for i in ids], pa.int64())
    return set_column(set_column(batch, TOKENS, tokens), CHARS, pc.cast(pc.utf8_length(arr), pa.int64()))


class Summary:
    """Rows and tokens per (dropping stage, reason) — `None` for kept rows — and length histograms."""

    def __init__(self, stage_id: str):
        self.stage_id = stage_id
        self.rows: Counter = Counter()
        self.tokens: Counter = Counter()
        self.hist_in = np.zeros(len(LENGTH_BINS) - 1, dtype=np.int64)
        self.hist_kept = np.zeros_like(self.hist_in)
        self.has_text = False

    def add(self, batch: pa.Table) -> None:
        grouped = batch.group_by([DROP_STAGE, DROP_REASON], use_threads=False).aggregate(
            [([], "count_all"), (TOKENS, "sum")])
        for stage, reason, n, t in zip(*(grouped.column(c).to_pylist() for c in
                                         (DROP_STAGE, DROP_REASON, "count_all", f"{TOKENS}_sum"))):
            key = None if reason is None else (stage or self.stage_id, reason)
            self.rows[key] += n
            self.tokens[key] += t or 0
        chars = batch.column(CHARS)
        if chars.null_count == len(chars):
            return
        self.has_text = True
        lengths = pc.fill_null(chars, 0).to_numpy(zero_copy_only=False)
        kept = live_mask(batch).to_numpy(zero_copy_only=False)
        own = pc.fill_null(pc.equal(batch.column(DROP_STAGE), self.stage_id), False).to_numpy(zero_copy_only=False)
        self.hist_kept += np.histogram(lengths[kept], LENGTH_BINS)[0]
        self.hist_in += np.histogram(lengths[kept | own], LENGTH_BINS)[0]

    def to_dict(self) -> dict:
        """A picklable, mergeable form, for summaries made in write tasks."""
        return {"rows": [[*(k or (None, None)), n] for k, n in self.rows.items()],
                "tokens": [[*(k or (None, None)), n] for k, n in self.tokens.items()],
                "hist_in": self.hist_in.tolist(), "hist_kept": self.hist_kept.tolist(), "has_text": self.has_text}

    @classmethod
    def merged(cls, stage_id: str, parts: Iterable[dict]) -> "Summary":
        summary = cls(stage_id)
        for part in parts:
            for field, counter in (("rows", summary.rows), ("tokens", summary.tokens)):
                for stage, reason, n in part[field]:
                    counter[None if reason is None else (stage, reason)] += n
            summary.hist_in += part["hist_in"]
            summary.hist_kept += part["hist_kept"]
            summary.has_text |= part["has_text"]
        return summary

    def kept(self) -> tuple[int, int]:
        return self.rows.get(None, 0), self.tokens.get(None, 0)

    def input_of_first_stage(self) -> tuple[int, int]:
        """What the first stage saw: its output minus what the reader had already quarantined."""
        keys = [k for k in self.rows if k is None or k[0] == self.stage_id]
        return sum(self.rows[k] for k in keys), sum(self.tokens[k] for k in keys)

    def drops_by(self, stage: str) -> dict[str, int]:
        return {k[1]: n for k, n in self.rows.items() if k is not None and k[0] == stage}


def summarize(batches: Iterable[pa.Table], stage_id: str) -> Summary:
    summary = Summary(stage_id)
    for batch in batches:
        summary.add(batch)
    return summary


@dataclasses.dataclass(frozen=True)
class MeasureColumns:
    """Where a fused pass (pipeline.passes) leaves, on every row, what it measured of one of its stages:
    the row's size as it left the stage and its share of the seconds the stage spent on its batch."""

    tokens: str
    chars: str
    seconds: str

    @classmethod
    def of(cls, stage_id: str) -> "MeasureColumns":
        return cls(f"_pass:{stage_id}:tokens", f"_pass:{stage_id}:chars", f"_pass:{stage_id}:seconds")

    def names(self) -> list[str]:
        return list(dataclasses.astuple(self))


def undo_drops(batch: pa.Table, stage_ids: list[str]) -> pa.Table:
    """The batch as if the given stages had dropped nothing."""
    if DROP_STAGE not in batch.column_names or not stage_ids:
        return batch
    by_them = pc.fill_null(pc.is_in(batch.column(DROP_STAGE), value_set=pa.array(stage_ids, pa.string())), False)
    for name in (DROP_STAGE, DROP_REASON):
        column = batch.column(name)
        batch = set_column(batch, name, pc.if_else(by_them, pa.scalar(None, column.type), column))
    return batch


def pass_summaries(batches: Iterable[pa.Table], stage_ids: list[str]) -> tuple[list[Summary], list[float]]:
    """Each stage of a fused pass summarised as if it had run alone, and the seconds it spent.

    Stage j's view of a row: dropped if a stage up to j dropped it, kept if only a later stage
    did, and sized as it left stage j.
    """
    summaries = [Summary(sid) for sid in stage_ids]
    seconds = [0.0] * len(stage_ids)
    for batch in batches:
        for j, sid in enumerate(stage_ids):
            measured = MeasureColumns.of(sid)
            view = undo_drops(batch.select([DROP_STAGE, DROP_REASON]), stage_ids[j + 1:])
            summaries[j].add(view.append_column(TOKENS, batch.column(measured.tokens))
                             .append_column(CHARS, batch.column(measured.chars)))
            seconds[j] += pc.sum(batch.column(measured.seconds)).as_py() or 0.0
    return summaries, seconds


def scan(source, columns: list[str]) -> Iterable[pa.Table]:
    """Batches of a few columns of a stage's output: a checkpoint folder on any filesystem (a columnar
    scan of its Parquet files, no Ray job: only those columns' pages are fetched from object storage),
    or a materialized dataset (streamed from the object store)."""
    if isinstance(source, Location):
        import pyarrow.dataset as pads

        files = [f.path for f in source.files() if f.suffix == ".parquet"]
        if not files:
            return iter(())
        dataset = pads.dataset(files, filesystem=source.fs, format="parquet")
        return (pa.Table.from_batches([b]) for b in dataset.to_batches(columns=columns))
    return source.select_columns(columns).iter_batches(batch_format="pyarrow", batch_size=None)


@dataclasses.dataclass
class StageRecord:
    """One stage's entry in stats.json: what the progress lines, the report, the dataset card and the
    checkpoint markers all read."""

    id: str
    name: str
    rows_in: int
    kept: int
    dropped: int
    dropped_by_reason: dict[str, int]
    added: int
    tokens_in: int | None
    tokens_kept: int
    tokens_dropped_by_reason: dict[str, int]
    hist_in: list[int] | None
    hist_kept: list[int] | None
    wall_s: float | None
    resumed: bool = False
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    pass_id: str | None = None  # the fused pass it ran in, if any
    examples: dict[str, Any] | None = None  # rows it dropped, per reason (`pipeline.examples`), once written

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("pass_id", "examples")}
        if self.pass_id is not None:
            data["pass"] = self.pass_id
        if self.examples is not None:
            data["examples"] = self.examples
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StageRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}, pass_id=data.get("pass"))


@dataclasses.dataclass
class PassRecord:
    """A pass's statistics: its stages' records and the rows the reader quarantined before its first
    stage (only a run's first pass has any); what a checkpoint marker keeps."""

    stages: list[StageRecord]
    read_drops: dict[str, int]

    def to_json(self) -> list[dict[str, Any]]:
        return [{**r.to_json(), "read_drops": self.read_drops if j == 0 else {}} for j, r in enumerate(self.stages)]

    @classmethod
    def from_json(cls, records: list[dict[str, Any]]) -> "PassRecord":
        stages = [dataclasses.replace(StageRecord.from_json(r), resumed=True) for r in records]
        return cls(stages, records[0].get("read_drops", {}) if records else {})


def stage_record(summary: Summary, name: str, rows_in: int, tokens_in: int, produces_rows: bool,
                 wall_s: float, metrics: dict) -> StageRecord:
    """The record of one stage, from its output's summary."""
    sid = summary.stage_id
    dropped = dict(sorted(summary.drops_by(sid).items(), key=lambda kv: -kv[1]))
    kept, tokens_kept = summary.kept()
    total_dropped = sum(dropped.values())
    return StageRecord(
        id=sid, name=name, rows_in=rows_in, kept=kept, dropped=total_dropped, dropped_by_reason=dropped,
        added=kept + total_dropped - rows_in if produces_rows else 0, tokens_in=tokens_in, tokens_kept=tokens_kept,
        tokens_dropped_by_reason={k[1]: t for k, t in summary.tokens.items() if k is not None and k[0] == sid},
        hist_in=summary.hist_in.tolist() if summary.has_text else None,
        hist_kept=summary.hist_kept.tolist() if summary.has_text else None,
        wall_s=round(wall_s, 3), metrics=metrics,
    )


def read_record(first: StageRecord, read_drops: dict[str, int]) -> StageRecord:
    """The reader's record, recovered from the first stage's (the reader's quarantined rows ride along)."""
    dropped = sum(read_drops.values())
    return StageRecord(
        id=READ_STAGE, name="read", rows_in=first.rows_in + dropped, kept=first.rows_in, dropped=dropped,
        dropped_by_reason=read_drops, added=0, tokens_in=None, tokens_kept=first.tokens_in,
        tokens_dropped_by_reason={}, hist_in=None, hist_kept=None, wall_s=None, resumed=first.resumed,
    )


def check_invariant(record: StageRecord, produces_rows: bool) -> str | None:
    """None if `rows in = kept + dropped` holds (stages that create rows are exempt), else what is wrong."""
    if produces_rows:
        return None
    total = record.kept + record.dropped
    if total != record.rows_in:
        return (f"stage {record.id}: rows in {record.rows_in:,} != kept {record.kept:,} + dropped "
                f"{record.dropped:,} ({record.rows_in - total:+,} rows unaccounted)")
    return None
