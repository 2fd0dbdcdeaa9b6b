"""What a run prints while it works: a line per stage, with Ray Data's own bars in between."""

from __future__ import annotations

import sys

from rich.console import Console


class Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True, highlight=False)

    def _print(self, *args):
        if self.enabled:
            self.console.print(*args)

    def note(self, text: str):
        self._print(f"[dim]{text}[/dim]")

    def stage_start(self, first: int, n: int, stage_ids: list[str]):
        if len(stage_ids) == 1:
            self._print(f"[bold]stage {first}/{n}[/bold] {stage_ids[0]}")
        else:
            last = first + len(stage_ids) - 1
            self._print(f"[bold]stages {first}-{last}/{n}[/bold] {', '.join(stage_ids)} [dim](one pass)[/dim]")

    def stage_done(self, r: dict):
        reasons = ", ".join(f"{k}: {v:,}" for k, v in list(r["dropped_by_reason"].items())[:4])
        how = "resumed from checkpoint" if r.get("resumed") else f"{r['wall_s']:.1f}s"
        added = f" (+{r['added']:,} created)" if r.get("added") else ""
        self._print(
            f"  {r['id']}: in {r['rows_in']:,}{added} -> kept {r['kept']:,}, dropped {r['dropped']:,}"
            + (f" ({reasons})" if reasons else "") + f"  [{how}]"
        )

    def writing(self, out):
        self._print(f"writing {out}")

    def finished(self, result: dict, out):
        self._print(
            f"[green]done[/green] in {result['wall_s']:.1f}s: {result['rows_out']:,} rows, "
            f"{result['tokens_out']:,} tokens -> {out}/data (report: {out}/report.html)"
        )
        sys.stderr.flush()
