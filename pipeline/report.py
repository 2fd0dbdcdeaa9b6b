"""report.html: one self-contained page (inline SVG plots, no scripts, no network) about a run.

Stages contribute plots without knowing about HTML: a `plots` list in their metrics holds specs
({"kind": "line"|"bar"|"hist", "title", "x", "y", "xlabel", "ylabel", "series"}), drawn here.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from pipeline.stats import LENGTH_BINS


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=100)
    return plt, fig, ax


def _svg(plt, fig) -> str:
    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def funnel(stages: list[dict]) -> str:
    plt, fig, ax = _figure()
    names = [s["id"] for s in stages]
    ax.bar(names, [s["kept"] for s in stages], color="#4C78A8", label="rows kept")
    ax.set_ylabel("rows kept")
    ax2 = ax.twinx()
    ax2.plot(names, [s["tokens_kept"] for s in stages], color="#F58518", marker="o", label="tokens kept")
    ax2.set_ylabel("tokens kept")
    ax.set_title("Funnel: rows and tokens kept after each stage")
    ax.tick_params(axis="x", rotation=30)
    fig.legend(loc="upper right", fontsize=8)
    return _svg(plt, fig)


def drop_reasons(stages: list[dict]) -> str | None:
    labels, counts = [], []
    for s in stages:
        for reason, n in s["dropped_by_reason"].items():
            labels.append(f"{s['id']}: {reason}")
            counts.append(n)
    if not labels:
        return None
    plt, fig, ax = _figure()
    fig.set_size_inches(7.5, max(2.0, 0.28 * len(labels) + 1))
    ax.barh(labels[::-1], counts[::-1], color="#E45756")
    ax.set_xlabel("rows dropped")
    ax.set_title("Drop reasons")
    return _svg(plt, fig)


def length_histograms(stages: list[dict]) -> str | None:
    with_text = [s for s in stages if s.get("hist_kept")]
    if not with_text:
        return None
    before, after = with_text[0]["hist_in"], with_text[-1]["hist_kept"]
    plt, fig, ax = _figure()
    labels = [f"<{_short(b)}" for b in LENGTH_BINS[1:]]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], before, width=0.4, label=f"before ({with_text[0]['id']} input)", color="#9D9DA0")
    ax.bar([i + 0.2 for i in x], after, width=0.4, label="after (output)", color="#54A24B")
    ax.set_xticks(list(x), labels, rotation=30, fontsize=8)
    ax.set_xlabel("text length (characters)")
    ax.set_ylabel("rows")
    ax.set_title("Text length before and after")
    ax.legend(fontsize=8)
    return _svg(plt, fig)


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n < 10**9 else ("inf" if n >= 10**9 else (f"{n // 1000}k" if n >= 1000 else str(n)))


def plot_spec(spec: dict) -> str:
    plt, fig, ax = _figure()
    kind = spec.get("kind", "line")
    series = spec.get("series") or [{"x": spec.get("x"), "y": spec.get("y"), "label": None}]
    for k, s in enumerate(series):
        if kind == "bar":
            n = len(series)
            xs = list(range(len(s["x"])))
            ax.bar([i + (k - (n - 1) / 2) * 0.8 / n for i in xs], s["y"], width=0.8 / n, label=s.get("label"))
            ax.set_xticks(xs, [str(v) for v in s["x"]], rotation=30, fontsize=8)
        elif kind == "hist":
            ax.bar([str(v) for v in s["x"]], s["y"], label=s.get("label"))
        else:
            ax.plot(s["x"], s["y"], label=s.get("label"))
    if any(s.get("label") for s in series):
        ax.legend(fontsize=8)
    ax.set_title(spec.get("title", ""))
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec.get("ylabel", ""))
    if spec.get("logy"):
        ax.set_yscale("log")
    return _svg(plt, fig)


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
    for title, svg in (("Drop reasons", drop_reasons(stages)), ("Text length", length_histograms(stages))):
        if svg:
            sections += [f"<h2>{title}</h2>", svg]
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
