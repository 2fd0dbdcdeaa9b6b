"""Row accounting without Ray: drop marking, stamping, the invariant, and summaries."""

from __future__ import annotations

from pathlib import Path

import json
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
    record.rows_in = 4
    assert "1 rows unaccounted" in check_invariant(record, False)
    assert sum(record.hist_in) == 3 and sum(record.hist_kept) == 1


def test_token_counts_follow_messages_for_instruction_rows():
    messages = [[{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]]
    batch = measure(pa.table({"messages": messages}), None)
    assert batch.column("_tokens").to_pylist() == [5]


def test_a_pass_record_is_what_its_checkpoint_marker_held_and_stats_json_gets_the_same_keys():
    """A marker's stats (every stage's entry, the reader's quarantines on the first) read back give the
    same records, resumed; stats.json's entries keep their keys and order."""
    from pipeline.stats import PassRecord

    batch = measure(pa.table({"text": ["a b c", "d", ""], DROP_REASON: [None, "short", "bad_json"],
                              DROP_STAGE: [None, "01-x", "00-read"]}), None)
    summary = Summary("01-x")
    summary.add(batch)
    first = stage_record(summary, "x", 2, 4, False, 0.1, {"m": 1})
    first.pass_id = "01-x+02-y"
    ran = PassRecord([first, stage_record(summary, "y", 1, 3, False, 0.2, {})], {"bad_json": 1})
    marker = json.loads(json.dumps(ran.to_json()))
    assert [r["read_drops"] for r in marker] == [{"bad_json": 1}, {}]
    back = PassRecord.from_json(marker)
    assert back.read_drops == {"bad_json": 1} and all(r.resumed for r in back.stages)
    assert [r.to_json() for r in back.stages] == [{**r.to_json(), "resumed": True} for r in ran.stages]
    assert list(first.to_json()) == ["id", "name", "rows_in", "kept", "dropped", "dropped_by_reason", "added",
                                     "tokens_in", "tokens_kept", "tokens_dropped_by_reason", "hist_in", "hist_kept",
                                     "wall_s", "resumed", "metrics", "pass"]


@pytest.mark.parametrize("reasons, says", [
    ({"bad_json": 3}, "is the input's format right?"),  # format: jsonl given a WARC file
    ({"missing_field:text": 3}, "map it: input: {fields: {text: THEIR_FIELD}}."),  # a Parquet file's `body` column
    ({"missing_field:text": 2, "bad_json": 1}, "is the input's format right?"),
    ({"not_a_string:text": 3}, "their text is not a string (each reject's meta has its type and value)"),  # lists of paragraphs
])
def test_a_run_that_read_nothing_says_why_and_what_to_change(reasons, says):
    from pipeline.errors import RunFailed
    from pipeline.runner import _check_useful

    read = {"rows_in": 3, "kept": 0, "dropped_by_reason": reasons}
    with pytest.raises(RunFailed, match="all 3 records were quarantined") as failed:
        _check_useful({"rows_out": 0, "stages": [read]}, "out")
    assert says in str(failed.value) and str(failed.value).endswith("They are in out/rejects/00-read")
