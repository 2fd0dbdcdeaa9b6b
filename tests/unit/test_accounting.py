"""Row accounting without Ray: drop marking, stamping, the invariant, and summaries."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.errors import InvariantViolation
from pipeline.execute import apply_map_stage
from pipeline.records import DROP_REASON, DROP_STAGE, drop_rows
from pipeline.stage import MapStage, StageConfig, StageContext
from pipeline.stats import Summary, check_invariant, measure, stage_record


def ctx(stage_id="01-x"):
    return StageContext(stage_id=stage_id, output_dir=Path("/tmp"), work_dir=Path("/tmp"))


class DropOdd(MapStage):
    name = "drop_odd"

    def process_batch(self, batch):
        return drop_rows(batch, [None if i % 2 == 0 else "odd" for i in batch.column("n").to_pylist()])


class LosesRows(MapStage):
    name = "loses_rows"

    def process_batch(self, batch):
        return batch.slice(0, 1)


def test_first_reason_wins():
    batch = pa.table({"n": [1, 2]})
    batch = drop_rows(batch, ["first", None])
    batch = drop_rows(batch, ["second", "second"])
    assert batch.column(DROP_REASON).to_pylist() == ["first", "second"]


def test_map_stage_stamps_drops_and_passes_earlier_drops_through():
    batch = pa.table({"n": [0, 1, 2, 3], DROP_REASON: [None, None, "bad_json", None],
                      DROP_STAGE: [None, None, "00-read", None]})
    out = apply_map_stage(DropOdd(StageConfig(), ctx()), batch)
    rows = {(r["n"], r[DROP_REASON], r[DROP_STAGE]) for r in out.to_pylist()}
    assert rows == {(0, None, None), (1, "odd", "01-x"), (3, "odd", "01-x"), (2, "bad_json", "00-read")}


def test_a_stage_that_removes_rows_is_caught():
    with pytest.raises(InvariantViolation, match="returned 1 rows for 3"):
        apply_map_stage(LosesRows(StageConfig(), ctx()), pa.table({"n": [1, 2, 3]}))


def test_summary_and_invariant():
    batch = measure(pa.table({"text": ["a b c", "d", "e f", ""],
                              DROP_REASON: [None, "short", "short", "bad_json"],
                              DROP_STAGE: [None, "01-x", "01-x", "00-read"]}), None)
    summary = Summary("01-x")
    summary.add(batch)
    assert summary.kept() == (1, 3)
    assert summary.drops_by("01-x") == {"short": 2}
    assert summary.drops_by("00-read") == {"bad_json": 1}
    assert summary.input_of_first_stage() == (3, 6)
    record = stage_record(summary, "x", 3, 6, False, 0.1, {})
    assert check_invariant(record, False) is None
    record["rows_in"] = 4
    assert "1 rows unaccounted" in check_invariant(record, False)
    assert sum(record["hist_in"]) == 3 and sum(record["hist_kept"]) == 1


def test_token_counts_follow_messages_for_instruction_rows():
    messages = [[{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]]
    batch = measure(pa.table({"messages": messages}), None)
    assert batch.column("_tokens").to_pylist() == [5]
