"""report.html: one self-contained page (inline SVG charts, no scripts, no network) about a run.

Stages contribute plots without knowing about HTML: a `plots` list in their metrics holds specs
({"kind": "line"|"bar"|"hist", "title", "x", "y", "xlabel", "ylabel", "series"}), drawn here.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pipeline import svg
from pipeline.stats import LENGTH_BINS


def funnel(stages: list[dict]) -> str:
    names = [s["id"] for s in stages]
    rows = svg.bars(names, [{"y": [s["kept"] for s in stages], "label": "rows kept"}],
                    "Funnel: rows kept after each stage", "", "rows")
    tokens = svg.bars(names, [{"y": [s["tokens_kept"] for s in stages], "label": "tokens kept"}],
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
            f"<tr><td>{html.escape(s['id'])}</td><td>{s['rows_in']:,}</td><td>{s['kept']:,}</td>"
            f"<td>{s['dropped']:,}</td><td>{s.get('added', 0):,}</td><td>{s['tokens_kept']:,}</td>"
            f"<td>{reasons}</td><td>{wall}{resumed}</td></tr>"
        )
    return ("<table><tr><th>stage</th><th>rows in</th><th>kept</th><th>dropped</th><th>created</th>"
            "<th>tokens kept</th><th>drop reasons</th><th>wall s</th></tr>" + "".join(rows) + "</table>")


def _metrics(stage: dict) -> str:
    metrics = {k: v for k, v in (stage.get("metrics") or {}).items() if k != "plots"}
    parts = []
    if metrics:
        parts.append(f"<pre>{html.escape(json.dumps(metrics, indent=1, default=str))}</pre>")
    for spec in (stage.get("metrics") or {}).get("plots", []):
        parts.append(plot_spec(spec))
    if not parts:
        return ""
    return f"<h3>{html.escape(stage['id'])}</h3>" + "".join(parts)


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
    stage_sections = "".join(_metrics(s) for s in stages)
    if stage_sections:
        sections += ["<h2>Stage details</h2>", stage_sections]
    style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "td:first-child,th:first-child,td:nth-child(7){text-align:left}svg{max-width:100%;height:auto}"
             "pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result['name'])}</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")


def write(path: Path, result: dict[str, Any]) -> None:
    from pipeline.yaml_source import redact

    Path(path).write_text(redact(render(result)), encoding="utf-8")
