"""The output sink on the shared local Ray: while it routes dropped rows to rejects it keeps a few
examples per (stage, reason), the same ones however Ray splits the rows between write tasks."""

from __future__ import annotations

import json

import pyarrow as pa

from pipeline.records import CHARS, DROP_REASON, DROP_STAGE, TOKENS
from pipeline.sinks import RoutingSink

N = 400


def rows() -> pa.Table:
    """Every fifth row kept; the rest dropped by two stages for three reasons, ids in scrambled order."""
    reasons = [None, ("01-length", "too_few_words"), ("01-length", "too_many_words"), ("02-dedup", "near_duplicate"),
               ("00-read", "bad_json")]
    picked = [reasons[i % 5] for i in range(N)]
    return pa.table({
        "id": [f"doc{(i * 7919) % N:04d}" for i in range(N)],
        "text": [None if r and r[1] == "bad_json" else "word " * (i % 200) for i, r in enumerate(picked)],
        "meta": [json.dumps({"path": "in.jsonl", "line": i + 1}) for i in range(N)],
        DROP_STAGE: [r[0] if r else None for r in picked],
        DROP_REASON: [r[1] if r else None for r in picked],
        TOKENS: [i % 200 for i in range(N)],
        CHARS: [5 * (i % 200) for i in range(N)],
    })


def write(ray, tmp_path, blocks: int, name: str) -> RoutingSink:
    sink = RoutingSink({"parquet": tmp_path / name / "data"}, tmp_path / name / "rejects", "02-dedup", min_rows=37)
    ray.data.from_arrow(rows()).repartition(blocks).write_datasink(sink)
    return sink


def test_sink_keeps_the_same_few_examples_per_reason_however_rows_are_split(ray_session, tmp_path):
    one, many = write(ray_session, tmp_path, 1, "one"), write(ray_session, tmp_path, 9, "many")
    assert len(list((tmp_path / "many" / "data").iterdir())) > 1, "the rows must reach several write tasks"
    assert one.examples == many.examples
    table = rows()
    expected = {}
    for row in table.to_pylist():
        if row[DROP_REASON] is not None:
            expected.setdefault(row[DROP_STAGE], {}).setdefault(row[DROP_REASON], []).append(row["id"])
    got = {stage: {reason: [r["id"] for r in examples] for reason, examples in by_reason.items()}
           for stage, by_reason in many.examples.items()}
    assert got == {stage: {reason: sorted(ids)[:3] for reason, ids in by_reason.items()}
                   for stage, by_reason in expected.items()}
    quarantined = many.examples["00-read"]["bad_json"][0]
    assert set(quarantined) == {"id", "meta"} and json.loads(quarantined["meta"])["path"] == "in.jsonl"
    texts = [r["text"] for by_reason in many.examples.values() for examples in by_reason.values() for r in examples
             if "text" in r]
    assert all(len(t) <= 300 or t.endswith(" chars)") for t in texts) and any(t.endswith(" chars)") for t in texts)
    assert many.summary.rows[None] == N // 5  # the counts still come back with the examples
