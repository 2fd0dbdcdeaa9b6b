"""Examples of dropped rows, a few per (stage, reason): what a user opens a report for.

Counts say how many rows a rule dropped; only a row says why. The write pass already sees
every dropped row, so each write task keeps a few per reason (`pick`) and the driver merges
them (`merge`). Both keep the rows with the smallest ids, so the examples do not depend on how
Ray happened to split the rows between write tasks: the same run gives the same examples.
Values are shortened (`short`): an example is for reading, the full row is in `rejects/`.
"""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

PER_REASON = 3
TEXT_LIMIT = 300
META_LIMIT = 1000  # `meta` says where a quarantined row came from (path, line, error): keep more of it
CONTENT = ("text", "messages", "prompt", "chosen", "rejected", "html")  # what a row is, as opposed to about it


def short(value: Any, limit: int = TEXT_LIMIT) -> Any:
    """A value cut to a readable size: long text truncated with its length, bytes (raw HTML) as a size."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"... ({len(value):,} chars)"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    if isinstance(value, list):
        return [short(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: short(v, limit) for k, v in value.items()}
    return value


def pick(dropped: pa.Table, stages: pa.ChunkedArray | pa.Array, reasons: pa.ChunkedArray | pa.Array,
         columns: list[str]) -> list[list]:
    """[[stage, reason, [example, ...]], ...]: the rows with the smallest ids of each (stage, reason),
    shortened, only the given columns and without nulls. Chosen on a narrow table of keys, so a
    write task copies only the few rows it keeps, not every dropped row's text or HTML."""
    ids = dropped.column("id") if "id" in dropped.column_names else pa.nulls(dropped.num_rows, pa.string())
    keys = pa.table({"stage": stages, "reason": reasons, "id": ids,
                     "row": pa.array(range(dropped.num_rows), pa.int64())})
    groups = keys.group_by(["stage", "reason"], use_threads=False).aggregate([])
    out = []
    for stage, reason in zip(groups.column("stage").to_pylist(), groups.column("reason").to_pylist()):
        group = keys.filter(pc.and_(pc.equal(keys.column("stage"), stage), pc.equal(keys.column("reason"), reason)))
        if group.num_rows > PER_REASON:
            group = pc.take(group, pc.select_k_unstable(group, PER_REASON, [("id", "ascending")]))
        rows = dropped.select(columns).take(group.column("row")).to_pylist()
        out.append([stage, reason, sorted((_shorten(r) for r in rows), key=_order)])
    return out


def merge(parts: Iterable[list[list]]) -> dict[str, dict[str, list[dict]]]:
    """{stage: {reason: [example, ...]}} from every write task's `pick`, the smallest ids overall."""
    merged: dict[str, dict[str, list[dict]]] = {}
    for part in parts:
        for stage, reason, rows in part:
            merged.setdefault(stage, {}).setdefault(reason, []).extend(rows)
    return {stage: {reason: sorted(rows, key=_order)[:PER_REASON] for reason, rows in sorted(by_reason.items())}
            for stage, by_reason in sorted(merged.items())}


def _shorten(row: dict) -> dict:
    """Shortened values without nulls, the id and the content first: what a reader looks for."""
    first = [k for k in ("id", *CONTENT) if k in row]
    return {k: short(row[k], META_LIMIT if k == "meta" else TEXT_LIMIT)
            for k in first + [k for k in row if k not in first] if row[k] is not None}


def _order(row: dict) -> tuple[str, str]:
    """By id; the whole row breaks ties (copies of a row share its id), so the order never depends on arrival."""
    return str(row.get("id", "")), repr(sorted(row.items()))
