"""Extraction quality and speed on trafilatura's evaluation corpus, ours next to trafilatura's defaults.

Quality: snippet recall (share of `with` snippets found), precision (trafilatura's own evaluation:
found `with` / (found `with` + leaked `without`)), their F1, and the share of `without` boilerplate
kept out. Speed: pages per CPU-second (CPU time of the process doing the extraction, our child
process included) and per second of wall time, medians over repeats, variants interleaved so machine
load hits all alike. `auto` also reports its fallback share (pages given trafilatura's text).

Every figure is given for the whole set and for its English and non-English pages apart (the
language of a page: lid.176 on its gold snippets). `auto`'s rules were tuned on the non-English
pages only, so its English row is the one measured where nothing was tuned.

    python benchmarks/bench_extract.py [--repeats 3] [--pages N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.extract_auto import SLOW  # noqa: E402
from filters.extract_process import ExtractorProcess, Page  # noqa: E402
from filters.language import LanguageIdentifier  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "extraction" / "trafilatura_eval"
BATCH = 64


def load_pages() -> list[tuple[str, bytes, list[str], list[str]]]:
    gold = json.loads((DATA / "evaldata.json").read_text())
    return [(url, gzip.decompress((DATA / "html" / (g["file"] + ".gz")).read_bytes()), g["with"], g["without"]) for url, g in gold.items()]


def split_by_language(pages) -> dict[str, list]:
    """{"all", "English", "non-English"} -> pages (English first in "all"); a page's language is that of its
    gold main-text snippets."""
    langs, _ = LanguageIdentifier().predict([" ".join(w) for _, _, w, _ in pages])
    english = [p for p, lang in zip(pages, langs) if lang == "en"]
    other = [p for p, lang in zip(pages, langs) if lang != "en"]
    return {"all": english + other, "English": english, "non-English": other}


def child_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TrafilaturaDefaults:
    """The peer: `trafilatura.extract(raw_bytes, url=...)` exactly as a user calls it."""

    name = "peer: trafilatura.extract defaults"

    def run(self, pages):
        import trafilatura

        t0, c0 = time.perf_counter(), time.process_time()
        texts = [trafilatura.extract(raw, url=url) or "" for url, raw, _, _ in pages]
        return texts, [None] * len(texts), time.perf_counter() - t0, time.process_time() - c0


class OurEngine:
    """Our stage's path: the raw bytes to the killable child, which triages, decodes and extracts."""

    def __init__(self, engine: str, favor_precision: bool = False):
        self.name = f"ours: {engine}" + (" (favor_precision)" if favor_precision else "")
        self.process = ExtractorProcess(engine, timeout_s=30, favor_precision=favor_precision)
        self.process.extract_many([Page(b"<html><body><p>warm</p></body></html>")])

    def run(self, pages):
        pid = self.process._proc.pid
        t0, c0, cc0 = time.perf_counter(), time.process_time(), child_cpu_seconds(pid)
        outcomes = []
        for start in range(0, len(pages), BATCH):
            outcomes += self.process.extract_many([Page(raw, url) for url, raw, _, _ in pages[start : start + BATCH]])
        assert self.process._proc.pid == pid, "no page may time out in a benchmark run"
        cpu = time.process_time() - c0 + child_cpu_seconds(pid) - cc0
        return [o.text for o in outcomes], [o.engine for o in outcomes], time.perf_counter() - t0, cpu


def snippet_counts(text: str, with_: list[str], without: list[str]) -> tuple[int, int]:
    """(main-text snippets found, boilerplate snippets leaked) in one page's text."""
    return sum(s in text for s in with_), sum(s in text for s in without)


def f1(found: int, leaked: int, wanted: int) -> float:
    recall, precision = found / wanted, found / (found + leaked)
    return 2 * precision * recall / (precision + recall)


def quality(pages, texts) -> dict:
    counts = [snippet_counts(t, w, wo) for (_, _, w, wo), t in zip(pages, texts)]
    found, leaked = sum(c[0] for c in counts), sum(c[1] for c in counts)
    wanted = sum(len(w) for _, _, w, _ in pages)
    boiler = sum(len(wo) for _, _, _, wo in pages)
    recall, precision = found / wanted, found / (found + leaked)
    return {"recall": recall, "precision": precision, "f1": f1(found, leaked, wanted), "boilerplate_out": 1 - leaked / boiler}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pages", type=int, default=None, help="only the first N pages (a quick look)")
    args = ap.parse_args()
    subsets = split_by_language(load_pages()[: args.pages])
    variants = [TrafilaturaDefaults(), OurEngine("trafilatura"), OurEngine("trafilatura", True), OurEngine("resiliparse"), OurEngine("auto")]

    results: dict[tuple[str, str], dict] = {}
    for repeat in range(args.repeats):
        for subset in ("English", "non-English"):
            for v in variants:
                texts, engines, wall, cpu = v.run(subsets[subset])
                r = results.setdefault((v.name, subset), {"texts": texts, "engines": engines, "wall": [], "cpu": []})
                r["wall"].append(wall)
                r["cpu"].append(cpu)
        print(f"repeat {repeat + 1} of {args.repeats} done", file=sys.stderr)
    for v in variants:  # the whole set: its two halves, repeat by repeat
        en, non = results[(v.name, "English")], results[(v.name, "non-English")]
        results[(v.name, "all")] = {
            "texts": en["texts"] + non["texts"], "engines": en["engines"] + non["engines"],
            "wall": [a + b for a, b in zip(en["wall"], non["wall"])], "cpu": [a + b for a, b in zip(en["cpu"], non["cpu"])],
        }

    print(f"{len(subsets['all'])} pages ({len(subsets['English'])} English), {args.repeats} repeats (speed: medians)\n")
    print("| pages | extractor | snippet recall | snippet precision | F1 | boilerplate kept out | pages/s (wall) | pages/CPU-s | vs defaults (CPU) | fallback share |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for subset, pages in subsets.items():
        base_rate = len(pages) / statistics.median(results[(variants[0].name, subset)]["cpu"])
        for v in variants:
            r = results[(v.name, subset)]
            q = quality(pages, r["texts"])
            wall_rate, cpu_rate = len(pages) / statistics.median(r["wall"]), len(pages) / statistics.median(r["cpu"])
            fallback = f"{sum(e == SLOW for e in r['engines']) / len(pages):.3f}" if v.name == "ours: auto" else ""
            print(
                f"| {subset} ({len(pages)}) | {v.name} | {q['recall']:.4f} | {q['precision']:.4f} | {q['f1']:.4f} | {q['boilerplate_out']:.4f} "
                f"| {wall_rate:.1f} | {cpu_rate:.1f} | {cpu_rate / base_rate:.2f}x | {fallback} |"
            )
    for v in variants[1:]:
        v.process.close()


if __name__ == "__main__":
    main()
