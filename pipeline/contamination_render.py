"""The contamination report as data (report.json) and as pages (report.md, a self-contained report.html).

The JSON holds no times, paths of the machine or anything else that changes between runs of the
same inputs, and every list in it is sorted, so two runs give byte-identical files.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from filters.contamination.index import SHORT_GRAMS_NEEDED

if TYPE_CHECKING:
    from pipeline.storage import Location

ALL = "all sources"


def build(*, sources: list[str], scanned: dict[str, dict], items: list[dict], sizes: dict[str, int], index,
          settings: dict) -> dict[str, Any]:
    undetectable = {name: 0 for name in sizes}
    for item, grams, short in zip(index.items, index.item_grams, index.item_short_grams):
        undetectable[item.benchmark] += int(grams == 0 and short < SHORT_GRAMS_NEEDED)  # the index's own rule
    matrix: dict[str, dict[str, dict]] = {}
    for source in sources + [ALL]:
        rows = items if source == ALL else [r for r in items if r["source"] == source]
        matrix[source] = {}
        for name, size in sizes.items():
            found: dict[int, float] = {}  # item -> best coverage
            for r in rows:
                if r["benchmark"] == name:
                    found[r["item_index"]] = max(found.get(r["item_index"], 0.0), r["coverage"])
            matrix[source][name] = {
                "items_contaminated": len(found),
                "pct_of_benchmark": round(100.0 * len(found) / size, 4) if size else 0.0,
                "items_fully_found": sum(1 for c in found.values() if c >= 1.0),
            }
    return {
        "settings": settings,
        "benchmarks": {name: {"items": size, "undetectable_items": undetectable[name]} for name, size in sizes.items()},
        "index": {"grams": index.stats.grams, "ignored_common": index.stats.ignored_common,
                  "ignored_background": index.stats.ignored_background, "confirmed_items": index.stats.confirmed_items},
        "sources": {s: scanned.get(s, {"rows_scanned": 0, "rows_unreadable": 0}) for s in sources},
        "matrix": matrix,
        "items": [
            {
                "source": r["source"], "benchmark": r["benchmark"], "item_id": r["item_id"],
                "coverage": r["coverage"], "matched": r["matched"], "item_ngrams": _item_grams(r, index),
                "rows": r["rows"], "best_row_id": r["row_id"],
                "span": {"field": r["field"], "message": r["message"], "start": r["start"], "end": r["end"],
                         "text": r["span"]},
                "found_by": _found_by(r),
            }
            for r in items
        ],
        "totals": {"items_contaminated": len({(r["benchmark"], r["item_index"]) for r in items}),
                   "rows_scanned": sum(v["rows_scanned"] for v in scanned.values())},
    }


def write(out: "Location", report: dict) -> None:
    """The report's three files in `out`, on local disk or in object storage, each written whole."""
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(markdown(report))
    (out / "report.html").write_text(page(report))


def _cell(m: dict) -> str:
    return f"{m['items_contaminated']:,} ({m['pct_of_benchmark']:.2f}%)"


def _field(span: dict) -> str:
    """Where a span is: `text`, or a message column and the message's index in it (`chosen[0]`)."""
    return span["field"] if span["message"] is None else f"{span['field']}[{span['message']}]"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def markdown(report: dict) -> str:
    names = list(report["benchmarks"])
    lines = ["# Contamination report", "",
             "Items of each benchmark found in each source (share of the benchmark). "
             f"{report['totals']['rows_scanned']:,} rows scanned; {report['settings']['ngram']}-gram overlap.", "",
             "| source | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for source, row in report["matrix"].items():
        lines.append(f"| {source} | " + " | ".join(_cell(row[n]) for n in names) + " |")
    lines += ["", "| benchmark | items | undetectable (too short) |", "|---|---|---|"]
    lines += [f"| {n} | {b['items']:,} | {b['undetectable_items']:,} |" for n, b in report["benchmarks"].items()]
    lines += ["", "## Contaminated items", "", "| source | benchmark | item | coverage | rows | best row | field | span | found by |",
              "|---|---|---|---|---|---|---|---|---|"]
    for it in report["items"]:
        span = _one_line(it["span"]["text"], 120).replace("|", "\\|")
        how = _one_line(_how(it["found_by"]), 200).replace("|", "\\|")
        lines.append(f"| {it['source']} | {it['benchmark']} | {it['item_id']} | {it['coverage']:.3f} | {it['rows']} "
                     f"| {it['best_row_id']} | {_field(it['span'])} | {span} | {how} |")
    if not report["items"]:
        lines.append("| (none) | | | | | | | | |")
    return "\n".join(lines) + "\n"


def _grams(item: dict) -> str:
    return "-" if item["item_ngrams"] is None else f"{item['matched']}/{item['item_ngrams']}"


def _heat(pct: float) -> str:
    alpha = 0.0 if pct <= 0 else min(1.0, 0.15 + pct / 20)
    return f"background:rgba(214,69,65,{alpha:.2f})"


def page(report: dict) -> str:
    e = html.escape
    names = list(report["benchmarks"])
    head = "".join(f"<th>{e(n)}<br><small>{report['benchmarks'][n]['items']:,} items</small></th>" for n in names)
    matrix = "".join(
        f"<tr><td>{e(source)}</td>" + "".join(
            f"<td style='{_heat(row[n]['pct_of_benchmark'])}'>{_cell(row[n])}</td>" for n in names) + "</tr>"
        for source, row in report["matrix"].items())
    items = "".join(
        f"<tr><td>{e(it['source'])}</td><td>{e(it['benchmark'])}</td><td>{e(it['item_id'])}</td>"
        f"<td>{it['coverage']:.3f}</td><td>{_grams(it)}</td><td>{it['rows']}</td>"
        f"<td><code>{e(it['best_row_id'])}</code></td><td>{e(_field(it['span']))}</td>"
        f"<td class='span'>{e(it['span']['text'])}</td><td>{e(_how(it['found_by']))}</td></tr>"
        for it in report["items"]) or "<tr><td colspan='10'>no benchmark item was found</td></tr>"
    s = report["settings"]
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}"
             ".span{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;max-width:520px}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Contamination report</title>"
        f"<style>{style}</style></head><body><h1>Contamination report</h1>"
        f"<p>{report['totals']['rows_scanned']:,} rows scanned for {s['ngram']}-gram overlap "
        f"(shorter questions of at least {s['min_words']} words and other parts of at least "
        f"{s['min_words_answer']} matched whole; n-grams in more than "
        f"{s['max_item_frequency']} items ignored). {report['totals']['items_contaminated']:,} benchmark items found.</p>"
        f"<h2>Sources &times; benchmarks</h2><table><tr><th>source</th>{head}</tr>{matrix}</table>"
        "<h2>Contaminated items</h2><p>Coverage: share of the item's n-grams found in its best-matching row. "
        "Rows: how many rows of the source hold the item. Span: the longest matching run in the best row; "
        "field: the text of the row it is in. Found by: n-gram overlap, or a run's semantic pass (the window's "
        "cosine to the item and the judge's reason, as the run's `contamination` column recorded them).</p>"
        "<table><tr><th>source</th><th>benchmark</th><th>item</th><th>coverage</th><th>n-grams</th><th>rows</th>"
        f"<th>best row</th><th>field</th><th>span</th><th>found by</th></tr>{items}</table></body></html>\n"
    )


def _found_by(hit: dict) -> dict:
    """How the best row's match was found: n-gram overlap, or the semantic pass with its cosine and the
    judge's reason (as the run recorded them)."""
    if hit.get("method") != "semantic":
        return {"method": "ngram"}
    return {"method": "semantic", "cosine": hit["cosine"], "judge": hit["judge"], "reason": hit["reason"]}


def _how(found_by: dict) -> str:
    if found_by["method"] != "semantic":
        return "n-gram"
    return f"semantic (cosine {found_by['cosine']:.3f}; judge: {found_by['reason']})"


def _item_grams(hit: dict, index) -> int | None:
    """The grams `coverage` is a share of, so that matched / item_ngrams = coverage: the item's indexed
    grams, or its short grams for an item found by those alone (`matched` counts short grams then)."""
    if hit.get("method") == "semantic":
        return None  # the semantic pass matches no grams
    if hit["coverage"] > 0:
        return round(hit["matched"] / hit["coverage"])
    return int(index.item_grams[hit["item_index"]])
