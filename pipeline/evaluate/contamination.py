"""Each evaluated benchmark's contamination in the training data, to print beside its score.

A score on a benchmark whose items were trained on measures memory, not skill. The run's own
`decontaminate` stage already counted the items it found (stats.json); when it did not check a
benchmark, the training rows are scanned here with the same n-gram index (`filters.contamination`).
"""

from __future__ import annotations

import json
from typing import Iterable

from filters.contamination import BenchmarkNotFound, build_index
from pipeline.errors import UserError
from pipeline.storage import Location


def from_stats(run_dir: Location | None) -> dict[str, dict]:
    """benchmark -> what the run's decontaminate stage found: items, items found, and its action
    (with `drop` or `cut`, the leaks it found were removed before training)."""
    if run_dir is None:
        return {}
    try:
        stats = json.loads((run_dir / "stats.json").read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for stage in stats.get("stages", []):
        metrics = stage.get("metrics") or {}
        if stage.get("name") != "decontaminate" or not isinstance(metrics.get("benchmarks"), dict):
            continue
        for name, counts in metrics["benchmarks"].items():
            removed = metrics.get("action") in ("drop", "cut")
            found[name] = {"items": counts["items"], "items_found": counts["items_found"],
                           "leaked": 0 if removed else counts["items_found"],
                           "source": f"stats.json ({stage['id']}, action {metrics.get('action')})"}
    return found


def scan(benchmarks: list[str], texts: Iterable[str], benchmarks_dir: str | None) -> dict[str, dict]:
    """benchmark -> items of it found in the training texts by the decontamination index."""
    if not benchmarks:
        return {}
    try:
        index, sizes = build_index(benchmarks, benchmarks_dir)
    except BenchmarkNotFound as e:
        raise UserError(f"eval: contamination scan: {e}") from None
    items: dict[str, set[str]] = {b: set() for b in benchmarks}
    for hits in index.scan(list(texts)):
        for hit in hits:
            items[hit.item.benchmark].add(hit.item.item_id)
    return {b: {"items": sizes[b], "items_found": len(items[b]), "leaked": len(items[b]),
                "source": "scan of the training rows"} for b in benchmarks}


def training_texts(conversations: Iterable[list[dict]]) -> Iterable[str]:
    """What a leak would show in: every turn of every training conversation."""
    for chat in conversations:
        yield "\n".join(m["content"] for m in chat)
