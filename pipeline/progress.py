"""What a run prints while it works: a line per stage, and in a terminal a live line for the pass at work.

In a terminal a pass shows its rows so far and their rate, refreshed twice a second, so a
30-second extraction is visibly moving; off a terminal (a log file, CI) the same information
comes as plain lines that are never wrapped, so each line stays one greppable record. Text from
stages and inputs is escaped: `[resumed from checkpoint]` or a reason with brackets prints as
written, not as console markup.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner

if TYPE_CHECKING:
    from pipeline.stats import StageRecord

SHOWN_REASONS = 5


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.console = _console(stream or sys.stderr)

    @contextlib.contextmanager
    def writing_to(self, stream: TextIO) -> Iterator[None]:
        """Print to `stream` within the block (the real terminal, while stderr itself is filtered)."""
        console = self.console
        self.console = _console(stream)
        try:
            yield
        finally:
            self.console = console

    def _print(self, text: str):
        if self.enabled:
            self.console.print(text)

    def note(self, text: str):
        self._print(f"[dim]{escape(text)}[/dim]")

    def stage_start(self, first: int, n: int, stage_ids: list[str]):
        if len(stage_ids) == 1:
            self._print(f"[bold]stage {first}/{n}[/bold] {escape(stage_ids[0])}")
        else:
            last = first + len(stage_ids) - 1
            self._print(f"[bold]stages {first}-{last}/{n}[/bold] {escape(', '.join(stage_ids))} [dim](one pass)[/dim]")

    def stage_done(self, r: StageRecord):
        how = "resumed from checkpoint" if r.resumed else (f"{r.wall_s:.1f}s" if r.wall_s is not None else "")
        added = f" (+{r.added:,} created)" if r.added else ""
        reasons = drop_reasons(r.dropped_by_reason)
        line = (f"  {r.id}: in {r.rows_in:,}{added} -> kept {r.kept:,}, dropped {r.dropped:,}"
                + (f" ({reasons})" if reasons else "") + (f"  [{how}]" if how else ""))
        self._print(escape(line))

    def skipped(self, stage_ids: list[str], why: str):
        self._print(escape(f"  {', '.join(stage_ids)}: skipped, {why}"))

    @contextlib.contextmanager
    def working(self, label: str, rows_done: Callable[[], int] | None = None) -> Iterator[None]:
        """A live line while a pass runs: rows so far and rows/s when `rows_done` can tell, else the time.

        Only in a terminal: a log gets the stage's line when it is done, not a line every half second.
        The live line leaves stdout and stderr alone, so what Ray prints still goes through the
        run's console filter (`pipeline.console_filter`).
        """
        if not (self.enabled and self.console.is_terminal):
            yield
            return
        started = time.monotonic()
        spinner = Spinner("dots", escape(label))
        most = 0
        with Live(spinner, console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False):
            stop = threading.Event()

            def refresh():
                nonlocal most
                while not stop.wait(0.5):
                    elapsed = time.monotonic() - started
                    rows = _safely(rows_done) if rows_done else None
                    most = max(most, rows or 0)  # a finished pass's files move away from where they are counted
                    rate = f", {most / elapsed:,.0f} rows/s" if most and elapsed > 0 else ""
                    shown = f"{most:,} rows{rate}, " if rows_done else ""
                    spinner.update(text=escape(f"{label}: {shown}{elapsed:.0f}s"))

            thread = threading.Thread(target=refresh, name="progress", daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join()

    def writing(self, out):
        self._print(escape(f"writing {out}"))

    def finished(self, result: dict, out, already_complete: bool = False):
        how = "nothing to do, the output is complete" if already_complete else f"in {result['wall_s']:.1f}s"
        self._print(
            f"[green]done[/green] {escape(how)}: {result['rows_out']:,} rows, {result['tokens_out']:,} tokens -> "
            f"{escape(str(out))}/data (report: {escape(str(out))}/report.html)"
        )
        self.console.file.flush()


def _console(stream: TextIO) -> Console:
    """Never wrapped: off a terminal rich would wrap at 80 columns, splitting one record over two lines."""
    return Console(file=stream, highlight=False, soft_wrap=True, force_terminal=stream.isatty() or None)


def drop_reasons(by_reason: dict[str, int], shown: int = SHOWN_REASONS) -> str:
    """Every reason with its count, or the largest few and the rest summed, so the parts add up to the whole."""
    items = sorted(by_reason.items(), key=lambda kv: -kv[1])
    if len(items) > shown + 1:
        rest = items[shown:]
        items = items[:shown] + [(f"+{len(rest)} more", sum(n for _, n in rest))]
    return ", ".join(f"{k}: {v:,}" for k, v in items)


def _safely(count: Callable[[], int]) -> int | None:
    """A count taken while files are being written may meet one half-written; the next refresh will do."""
    try:
        return count()
    except (OSError, ValueError):
        return None
