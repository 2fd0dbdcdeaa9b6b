"""report.html: one self-contained page (inline SVG charts, no scripts, no network) about a run.

Stages contribute plots without knowing about HTML: a `plots` list in their metrics holds specs
({"kind": "line"|"bar"|"hist", "title", "x", "y", "xlabel", "ylabel", "series"}), drawn here;
the rest of their metrics become tables. Under each stage, examples of the rows it dropped, per
reason (`examples` in its stats record, see pipeline.examples): a user opens a report to learn
why rows were dropped, and counts alone do not say.
"""

from __future__ import annotations

import html
import json
from typing import Any

from pipeline import storage, svg
from pipeline.examples import CONTENT
from pipeline.stats import LENGTH_BINS
from pipeline.storage import Location

LIST_LIMIT = 20  # items of a list shown in a table cell


def funnel(stages: list[dict]) -> str:
    """Rows from the records read (before the reader's quarantine) down to the output; tokens per stage."""
    names = [s["id"] for s in stages]
    rows = svg.bars(["rows read"] + names, [{"y": [stages[0]["rows_in"]] + [s["kept"] for s in stages],
                                             "label": "rows"}],
                    "Funnel: rows read, then rows kept after each stage", "", "rows")
    tokens = svg.bars(names, [{"y": [s["tokens_kept"] or 0 for s in stages], "label": "tokens kept"}],
                      "Funnel: tokens kept after each stage", "", "tokens")
    return rows + tokens


def drop_reasons(stages: list[dict]) -> str | None:
    pairs = [(f"{s['id']}: {reason}", n) for s in stages for reason, n in s["dropped_by_reason"].items()]
    if not pairs:
        return None
    return svg.hbars([p[0] for p in pairs], [p[1] for p in pairs], "Drop reasons", "rows dropped")


def length_histograms(stages: list[dict]) -> str | None:
    with_text = [s for s in stages if s.get("hist_kept")]
    if not with_text:
        return None
    labels = [f"<{_short(b)}" for b in LENGTH_BINS[1:]]
    return svg.bars(labels, [{"y": with_text[0]["hist_in"], "label": f"before ({with_text[0]['id']} input)"},
                             {"y": with_text[-1]["hist_kept"], "label": "after (output)"}],
                    "Text length before and after", "text length (characters)", "rows")


def _short(n: int) -> str:
    if n >= 10**9:
        return "inf"
    return f"{n // 1_000_000}M" if n >= 1_000_000 else (f"{n // 1000}k" if n >= 1000 else str(n))


def plot_spec(spec: dict) -> str:
    series = spec.get("series") or [{"x": spec.get("x"), "y": spec.get("y"), "label": None}]
    title, xlabel, ylabel = spec.get("title", ""), spec.get("xlabel", ""), spec.get("ylabel", "")
    if spec.get("kind", "line") in ("bar", "hist"):
        return svg.bars(list(series[0]["x"]), series, title, xlabel, ylabel)
    return svg.lines(series, title, xlabel, ylabel)


def _table(stages: list[dict]) -> str:
    rows = []
    for s in stages:
        reasons = ", ".join(f"{html.escape(k)}: {v:,}" for k, v in s["dropped_by_reason"].items()) or "&ndash;"
        wall = f"{s['wall_s']:.2f}" if s.get("wall_s") is not None else "&ndash;"
        resumed = " (resumed)" if s.get("resumed") else ""
        rows.append(
            f"<tr><td><a href='#{_anchor(s)}'>{html.escape(s['id'])}</a></td><td>{s['rows_in']:,}</td>"
            f"<td>{s['kept']:,}</td><td>{s['dropped']:,}</td><td>{s.get('added', 0):,}</td>"
            f"<td>{svg.number(s['tokens_kept'] or 0)}</td><td class='l'>{reasons}</td><td>{wall}{resumed}</td></tr>"
        )
    return ("<table><tr><th>stage</th><th>rows in</th><th>kept</th><th>dropped</th><th>created</th>"
            "<th>tokens kept</th><th class='l'>drop reasons</th><th>wall s</th></tr>" + "".join(rows) + "</table>")


def _anchor(stage: dict) -> str:
    return "stage-" + html.escape(stage["id"], quote=True)


def _stage(stage: dict) -> str:
    """One stage's details: examples of the rows it dropped, per reason, then its metrics and plots."""
    metrics = stage.get("metrics") or {}
    parts = [_dropped(stage), _metrics(metrics)] + [plot_spec(spec) for spec in metrics.get("plots", [])]
    if not any(parts):
        return ""
    return (f"<h3 id='{_anchor(stage)}'>{html.escape(stage['id'])}</h3>"
            f"<p>{stage['rows_in']:,} rows in, {stage['kept']:,} kept, {stage['dropped']:,} dropped.</p>"
            + "".join(parts))


def _dropped(stage: dict) -> str:
    examples = stage.get("examples") or {}
    parts = []
    for reason, n in stage["dropped_by_reason"].items():
        rows = examples.get(reason)
        if rows:
            shown = f"{len(rows)} of {n:,} rows" if n > len(rows) else f"{n:,} row{'s' if n != 1 else ''}"
            parts.append(f"<h4>dropped: {html.escape(reason)} <span class='n'>({shown})</span></h4>"
                         + _examples(rows))
    return "".join(parts)


def _examples(rows: list[dict]) -> str:
    """A row per example: its content beside everything else about it (id, url, scores, and `meta`,
    which says where a quarantined record came from), so rows of any width stay readable."""
    body = []
    for row in rows:
        present = [k for k in CONTENT if k in row]
        content = "".join((f"<b>{k}</b>" if len(present) > 1 else "") + f"<div>{_value(row[k])}</div>" for k in present)
        fields = {k: _parsed(v) if k == "meta" else v for k, v in row.items() if k not in CONTENT}
        body.append(f"<tr><td>{content or '&ndash;'}</td><td>{_key_values(fields)}</td></tr>")
    return f"<table class='examples'><tr><th class='content'>content</th><th>fields</th></tr>{''.join(body)}</table>"


def _parsed(meta: str) -> Any:
    """`meta` travels as a JSON string; shown as its fields, or as it is where it was cut short."""
    try:
        return json.loads(meta)
    except (TypeError, ValueError):
        return meta


def _metrics(metrics: dict) -> str:
    """Scalars and flat values in one key/value table; each nested collection of records in a table of its own."""
    flat = {k: v for k, v in metrics.items() if k != "plots" and not _is_records(v)}
    parts = [_key_values(flat)] if flat else []
    for key, value in metrics.items():
        if key != "plots" and _is_records(value):
            parts.append(f"<h4>{html.escape(str(key))}</h4>" + _records(value))
    return "".join(parts)


def _is_records(value: Any) -> bool:
    """A dict of dicts ({group: {field: value}}) or a list of dicts: rows of a table."""
    items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    return bool(items) and all(isinstance(v, dict) for v in items)


def _key_values(mapping: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in mapping.items())
    return f"<table class='kv'>{rows}</table>"


def _records(value: dict | list) -> str:
    """Rows of dicts as one table, a column per key (a dict's own keys name the rows); fewer rows than
    fields are turned on their side, a column per row, so that no table is wider than it is long and
    tables nested in a narrow cell still fit."""
    items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    columns = list(dict.fromkeys(c for _, row in items for c in row))
    if len(items) < len(columns):
        names = [i + 1 if key is None else key for i, (key, _) in enumerate(items)]
        return _grid(names, [(c, [row.get(c) for _, row in items]) for c in columns])
    return _grid(columns, [(key, [row.get(c) for c in columns]) for key, row in items])


def _grid(header: list, rows: list[tuple[Any, list]]) -> str:
    """A table from a header and (row name or None, values) pairs."""
    named = any(name is not None for name, _ in rows)
    head = ("<th></th>" if named else "") + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + (f"<th>{html.escape(str(name))}</th>" if named else "")
                   + "".join(f"<td>{_value(v)}</td>" for v in values) + "</tr>" for name, values in rows)
    return f"<table class='records'><tr>{head}</tr>{body}</table>"


def _value(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "&ndash;"
    if value == "":
        return "<i>(empty)</i>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return svg.number(value)
    if _is_records(value):
        return _records(value)
    if isinstance(value, dict):
        return _key_values(value)
    if isinstance(value, list):
        shown = ", ".join(_value(v) for v in value[:LIST_LIMIT])
        return shown + (f", &hellip; (+{len(value) - LIST_LIMIT:,} more)" if len(value) > LIST_LIMIT else "")
    return html.escape(str(value))


def evaluation(result: dict[str, Any]) -> str:
    """`pipeline eval`'s section: base against tuned per task (a bar each, with its standard error in
    `err`, which the chart draws as an error bar), the differences, and contamination beside the scores."""
    from pipeline.evaluate.table import contamination_text, judge_text

    labels = list(result["models"])
    tasks = result["tasks"]
    series = [{"y": [t[label]["value"] for t in tasks], "err": [t[label]["stderr"] for t in tasks], "label": label}
              for label in labels]
    chart = svg.bars([t["task"] for t in tasks], series, "Score per task (error bars: one standard error)", "task",
                     "score")
    header = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    rows = []
    for t in tasks:
        cells = "".join(f"<td>{_plus_minus(t[label]['value'], t[label]['stderr'])}</td>" for label in labels)
        diff = _plus_minus(t["difference"], t.get("difference_stderr"), sign=True) if "difference" in t else ""
        leak = contamination_text(t["contamination"]) if "contamination" in t else "the run's own prompts"
        rows.append(f"<tr><td>{html.escape(t['task'])}</td><td class='l'>{html.escape(t['metric'])}</td>"
                    f"<td>{t[labels[-1]]['n']:,}</td>{cells}<td>{diff}</td><td class='l'>{html.escape(leak)}</td></tr>")
    table = (f"<table><tr><th>task</th><th class='l'>metric</th><th>n</th>{header}<th>difference</th>"
             f"<th class='l'>contamination in the training data</th></tr>{''.join(rows)}</table>")
    models = "; ".join(f"{html.escape(k)}: <code>{html.escape(v)}</code>" for k, v in result["models"].items())
    parts = ["<h2>Evaluation</h2>", f"<p>{models}</p>", chart, table]
    if result.get("judge"):
        parts.append(f"<p>{html.escape(judge_text(result['judge']))}</p>")
    return "".join(parts)


def _plus_minus(value: float, stderr: float | None, sign: bool = False) -> str:
    text = f"{value:+.3f}" if sign else f"{value:.3f}"
    return text + (f" &plusmn; {stderr:.3f}" if stderr is not None else "")


def render(result: dict[str, Any]) -> str:
    stages = result["stages"]
    sections = [f"<h1>Run report: {html.escape(result['name'])}</h1>",
                f"<p>{result['rows_out']:,} rows, {result['tokens_out']:,} tokens ({html.escape(result['tokenizer'])}) "
                f"in {result['wall_s']:.1f}s; started {html.escape(result['started'])}; config "
                f"<code>{html.escape(result['config'])}</code>.</p>",
                _table(stages), "<h2>Funnel</h2>", funnel(stages)]
    for title, figure in (("Drop reasons", drop_reasons(stages)), ("Text length", length_histograms(stages))):
        if figure:
            sections += [f"<h2>{title}</h2>", figure]
    if result.get("evaluation"):
        sections.append(evaluation(result["evaluation"]))
    stage_sections = "".join(_stage(s) for s in stages)
    if stage_sections:
        sections += ["<h2>Stage details</h2>", stage_sections]
    return page(result["name"], "".join(sections))


def page(title: str, body: str) -> str:
    """A self-contained HTML page in the report's style."""
    style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:6px 0}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}"
             "th{background:#f4f4f4;font-weight:600}td:first-child,th:first-child,.l{text-align:left}"
             "table.kv td,table.kv th{text-align:left}table table{margin:0;font-size:12px}"
             "table.examples{font-size:12px;width:100%;table-layout:fixed}table.examples td,table.examples th"
             "{text-align:left}table.examples td{overflow-wrap:anywhere}table.examples table{width:100%}"
             "table.examples table.kv th{width:1%;white-space:nowrap}th.content{width:58%}"
             "table.examples div{white-space:pre-wrap}h3{margin-top:2em;border-bottom:1px solid #ddd}"
             "h4{margin:1em 0 .2em;font-size:14px}.n{font-weight:normal;color:#666}svg{max-width:100%;height:auto}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")


def write(path: Location | str, result: dict[str, Any]) -> None:
    from pipeline.yaml_source import redact

    storage.locate(path).write_text(redact(render(result)))
