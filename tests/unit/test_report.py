"""The run report a user opens to learn why rows were dropped: readable stage details, honest axes,
a funnel from the rows read, and examples of dropped rows per reason. No Ray: a stats record in,
HTML out; and the picking of examples on plain Arrow tables."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pyarrow as pa
import pytest

from pipeline import examples, report, svg

REWEIGHT_METRICS = {
    "by": "domain_label",
    "budget_tokens": 2075.0,
    "groups": {
        "finance": {"natural_share": 0.11566265060240964, "factor": 1.7714602886484438, "rows_in": 1, "capped": False},
        "science": {"natural_share": 0.33397590361445784, "factor": 1.0424864639163456, "rows_in": 3, "capped": False},
    },
    "capped": [],
    "cluster_sizes": {"1": 6, "2": 4},
    "plots": [{"kind": "bar", "title": "Token share per group", "x": ["finance", "science"],
               "y": [0.11566265060240964, 0.33397590361445784], "xlabel": "group", "ylabel": "share"}],
}


def stage(sid: str, rows_in: int, kept: int, drops: dict | None = None, **extra) -> dict:
    drops = drops or {}
    return {"id": sid, "name": sid.split("-", 1)[1], "rows_in": rows_in, "kept": kept, "dropped": sum(drops.values()),
            "dropped_by_reason": drops, "added": 0, "tokens_in": None, "tokens_kept": kept * 10, "hist_in": None,
            "hist_kept": None, "wall_s": 0.5, "resumed": False, "metrics": {}, **extra}


def result(stages: list[dict]) -> dict:
    return {"name": "t", "config": "c.yaml", "started": "2026-01-01T00:00:00+00:00", "wall_s": 1.0,
            "tokenizer": "whitespace", "rows_out": stages[-1]["kept"], "tokens_out": stages[-1]["tokens_kept"],
            "stages": stages}


def y_tick_labels(chart: str) -> list[str]:
    return re.findall(rf'<text x="{svg.LEFT - 6}" y="[^"]+" text-anchor="end">([^<]+)</text>', chart)


def test_stage_metrics_are_tables_with_rounded_numbers():
    page = report.render(result([stage("00-read", 9, 9), stage("01-reweight", 9, 9, metrics=REWEIGHT_METRICS)]))
    details = page[page.index("Stage details"):]
    assert "<pre>" not in details and "{" not in details.split("<svg")[0]
    assert not re.findall(r"\d\.\d{6,}", page), "no float with more digits than anyone reads"
    groups = details[details.index("<h4>groups</h4>"):]
    header = re.search(r"<tr>(.*?)</tr>", groups).group(1)
    assert re.findall(r"<th>([^<]*)</th>", header) == ["", "finance", "science"]  # 2 groups of 4 fields: on its side
    assert "<th>natural_share</th><td>0.1157</td><td>0.334</td>" in groups
    assert "<th>capped</th><td>false</td><td>false</td>" in groups
    assert "<th>budget_tokens</th><td>2,075</td>" in details
    assert "<th>1</th><td>6</td>" in details  # a flat dict inside the key/value table is a small table too
    assert details.count("<svg") == 1  # the stage's plot is kept


def test_funnel_starts_at_the_rows_read_before_quarantine():
    chart = report.funnel([stage("00-read", 25, 23, {"bad_json": 2}), stage("01-length", 23, 20, {"too_few_words": 3})])
    bars = re.findall(r"<title>([^<]+)</title>", chart.split("</svg>")[0])
    assert bars == ["rows read: 25", "00-read: 23", "01-length: 20"]


@pytest.mark.parametrize("values, labels", [
    ([1, 2], ["0", "1", "2"]),
    ([0, 1], ["0", "1"]),
    ([3, 7], ["0", "2", "4", "6", "8"]),
    ([22, 20, 17], ["0", "5", "10", "15", "20", "25"]),
    ([1500, 3984], ["0", "1k", "2k", "3k", "4k"]),
])
def test_count_axes_have_integer_ticks_up_to_the_largest_bar(values, labels):
    assert y_tick_labels(svg.bars(["a"] * len(values), [{"y": values}])) == labels


def test_fractional_axes_keep_round_fractional_ticks():
    assert y_tick_labels(svg.bars(["a", "b"], [{"y": [0.3, 0.55]}])) == ["0", "0.2", "0.4", "0.6"]
    assert y_tick_labels(svg.lines([{"x": [0, 1], "y": [0.0, 16.6667]}])) == ["0", "5", "10", "15", "20"]


def test_dropped_rows_are_shown_per_reason_under_their_stage():
    rows = {"too_few_words": [{"id": "a", "text": "<b>hi</b>"}, {"id": "b", "text": "yo"}],
            "too_many_words": [{"id": "c", "text": "many words " * 3, "meta": '{"path": "in.jsonl"}'}]}
    drops = {"too_many_words": 7, "too_few_words": 2}
    page = report.render(result([stage("00-read", 12, 12), stage("01-length", 12, 3, drops, examples=rows)]))
    section = page[page.index("<h3 id='stage-01-length'>"):]
    assert section.index("dropped: too_many_words") < section.index("dropped: too_few_words")
    assert "(1 of 7 rows)" in section and "(2 rows)" in section
    assert "&lt;b&gt;hi&lt;/b&gt;" in section and "<b>hi</b>" not in section
    assert "<th>path</th><td>in.jsonl</td>" in section  # meta, where the row came from, as fields
    assert "href='#stage-01-length'" in page


def dropped_table(n: int, reasons=("a", "b")) -> pa.Table:
    return pa.table({
        "id": [f"id{(i * 7919) % n:05d}" for i in range(n)],
        "text": [("word " * (i % 150)) or None for i in range(n)],
        "html": [b"<p>" * 40 for _ in range(n)],
        "meta": [json.dumps({"path": "x.jsonl", "line": i, "pad": "p" * 400}) for i in range(n)],
        "_drop_reason": [reasons[i % len(reasons)] for i in range(n)],
    })


def picked(table: pa.Table, stage_id: str = "01-s") -> list[list]:
    stages = pa.array([stage_id] * table.num_rows, pa.string())
    return examples.pick(table, stages, table.column("_drop_reason"), ["id", "text", "html", "meta"])


def test_examples_are_the_smallest_ids_per_reason_however_the_rows_are_split():
    table = dropped_table(200)
    whole = examples.merge([picked(table)])
    for cuts in ([0, 200], [0, 13, 90, 200], [0, 1, 2, 150, 199, 200]):
        parts = [picked(table.slice(a, b - a)) for a, b in zip(cuts, cuts[1:])]
        assert examples.merge(reversed(parts)) == whole
    assert [r["id"] for r in whole["01-s"]["a"]] == ["id00000", "id00002", "id00004"]
    assert [r["id"] for r in whole["01-s"]["b"]] == ["id00001", "id00003", "id00005"]


def test_examples_are_shortened_for_reading():
    rows = examples.merge([picked(dropped_table(200))])["01-s"]
    row = next(r for r in rows["a"] + rows["b"] if "text" in r and len(r["text"]) > 100)
    assert row["text"].endswith(" chars)") and len(row["text"]) < examples.TEXT_LIMIT + 30
    assert row["html"] == "<120 bytes>"
    assert json.loads(row["meta"])["path"] == "x.jsonl"  # where a row came from survives whole
    assert any("text" not in r for r in rows["a"] + rows["b"])  # nulls are left out, not shown as None


def test_inspect_rejects_prints_examples_per_reason(tmp_path, capsys):
    from pipeline.commands import inspect

    (tmp_path / "manifest.json").write_text(json.dumps({"rows": 3}))
    read = stage("00-read", 5, 4, {"bad_json": 1},
                 examples={"bad_json": [{"id": "q1", "meta": '{"line": 4, "path": "in.jsonl"}'}]})
    length = stage("01-length", 4, 3, {"too_few_words": 1},
                   examples={"too_few_words": [{"id": "d2", "text": "x " * 500}]})
    (tmp_path / "stats.json").write_text(json.dumps(result([read, length])))
    assert inspect.main(SimpleNamespace(output=str(tmp_path), samples=3, rejects=True)) == 0
    out = capsys.readouterr().out
    block = out[out.index("examples of dropped rows"):]
    assert "00-read: bad_json (1 row)" in block and '\\"path\\": \\"in.jsonl\\"' in block
    assert "01-length: too_few_words (1 row)" in block and "(1,000 chars)" in block
