"""The console as a user reads it: reasons that add up, text printed as written, a live line in a terminal."""

from __future__ import annotations

import io
import itertools
import time

from pipeline.progress import Progress, drop_reasons
from pipeline.stats import StageRecord


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_reason_or_the_largest_and_the_rest_summed():
    few = {"a": 3, "b": 2}
    assert drop_reasons(few) == "a: 3, b: 2"
    many = {f"r{i}": 10 - i for i in range(8)}
    shown = drop_reasons(many)
    assert shown == "r0: 10, r1: 9, r2: 8, r3: 7, r4: 6, +3 more: 12"
    assert sum(int(part.rsplit(": ", 1)[1]) for part in shown.split(", ")) == sum(many.values())


def test_stage_lines_print_brackets_as_written_and_are_never_wrapped():
    stream = io.StringIO()
    record = StageRecord.from_json({
        "id": "01-[x]", "name": "x", "rows_in": 10**6, "kept": 10**6 - 1, "dropped": 1, "added": 0, "resumed": True,
        "dropped_by_reason": {"contaminated:[bench] " + "y" * 120: 1}, "tokens_in": 0, "tokens_kept": 0,
        "tokens_dropped_by_reason": {}, "hist_in": None, "hist_kept": None, "wall_s": 1.0})
    Progress(stream=stream).stage_done(record)
    assert stream.getvalue().count("\n") == 1
    assert "01-[x]" in stream.getvalue() and "[resumed from checkpoint]" in stream.getvalue()


def test_a_terminal_gets_a_live_line_with_rows_and_rate_and_a_log_does_not():
    counter = itertools.count(0, 500)
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        with Progress(stream=stream).working("01-extract", lambda: next(counter)):
            time.sleep(1.3)
    assert "01-extract: " in terminal.getvalue() and "rows/s" in terminal.getvalue()
    assert log.getvalue() == ""
