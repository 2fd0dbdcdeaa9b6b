"""Extraction quality and speed on trafilatura's evaluation corpus, ours next to trafilatura's defaults.

Quality: over all 990 pages, snippet recall (share of `with` snippets found), precision
(trafilatura's own evaluation: found `with` / (found `with` + leaked `without`)) and the share
of `without` boilerplate kept out. Speed: pages per second of wall time and per CPU-second
(CPU time of the process doing the extraction, our child process included), medians over
repeats on the first --speed-pages pages, variants interleaved so machine load hits all alike.

    python benchmarks/bench_extract.py [--speed-pages 300] [--repeats 3]
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

from filters.extract_process import ExtractorProcess  # noqa: E402
from filters.html_extract import triage  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "extraction" / "trafilatura_eval"
BATCH = 64


def load_pages() -> list[tuple[str, bytes, list[str], list[str]]]:
    gold = json.loads((DATA / "evaldata.json").read_text())
    return [(url, gzip.decompress((DATA / "html" / (g["file"] + ".gz")).read_bytes()), g["with"], g["without"]) for url, g in gold.items()]


def child_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TrafilaturaDefaults:
    """The peer: `trafilatura.extract(raw_bytes, url=...)` exactly as a user calls it."""

    name = "trafilatura.extract defaults"

    def run(self, pages):
        import trafilatura

        t0, c0 = time.perf_counter(), time.process_time()
        texts = [trafilatura.extract(raw, url=url) or "" for url, raw, _, _ in pages]
        return texts, time.perf_counter() - t0, time.process_time() - c0


class OurEngine:
    """Our stage's path: triage + charset decoding in the parent, extraction in the killable child."""

    def __init__(self, engine: str, favor_precision: bool = False):
        self.name = f"ours: {engine}" + (" (favor_precision)" if favor_precision else "")
        self.process = ExtractorProcess(engine, timeout_s=30, favor_precision=favor_precision)
        self.process.extract_many([("<html><body><p>warm</p></body></html>", None)])

    def run(self, pages):
        pid = self.process._proc.pid
        t0, c0, cc0 = time.perf_counter(), time.process_time(), child_cpu_seconds(pid)
        texts = []
        for start in range(0, len(pages), BATCH):
            chunk = pages[start : start + BATCH]
            todo = [(triage(raw, None, 10_000_000)[0], url) for url, raw, _, _ in chunk]
            outcomes = self.process.extract_many([(h or "", u) for h, u in todo])
            texts += [o.text for o in outcomes]
        assert self.process._proc.pid == pid, "no page may time out in a benchmark run"
        cpu = time.process_time() - c0 + child_cpu_seconds(pid) - cc0
        return texts, time.perf_counter() - t0, cpu


def quality(pages, texts) -> dict:
    found = sum(sum(s in t for s in w) for (_, _, w, _), t in zip(pages, texts))
    wanted = sum(len(w) for _, _, w, _ in pages)
    leaked = sum(sum(s in t for s in wo) for (_, _, _, wo), t in zip(pages, texts))
    boiler = sum(len(wo) for _, _, _, wo in pages)
    return {"recall": found / wanted, "precision": found / (found + leaked), "boilerplate_out": 1 - leaked / boiler}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed-pages", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pages = load_pages()
    variants = [TrafilaturaDefaults(), OurEngine("trafilatura"), OurEngine("trafilatura", True), OurEngine("resiliparse")]

    results = {}
    for v in variants:
        texts, wall, cpu = v.run(pages)
        results[v.name] = {**quality(pages, texts), "wall": [], "cpu": []}
        print(f"quality pass: {v.name}: {wall:.1f}s wall, {cpu:.1f}s CPU", file=sys.stderr)
    subset = pages[: args.speed_pages]
    for _ in range(args.repeats):
        for v in variants:
            _, wall, cpu = v.run(subset)
            results[v.name]["wall"].append(wall)
            results[v.name]["cpu"].append(cpu)

    base = results[variants[0].name]
    base_rate = len(subset) / statistics.median(base["cpu"])
    print(f"{len(pages)} pages (quality), {len(subset)} pages x {args.repeats} repeats (speed, medians)\n")
    print("| extractor | snippet recall | snippet precision | boilerplate kept out | pages/s (wall) | pages/CPU-s | speed vs defaults (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        wall_rate = len(subset) / statistics.median(r["wall"])
        cpu_rate = len(subset) / statistics.median(r["cpu"])
        print(f"| {name} | {r['recall']:.4f} | {r['precision']:.4f} | {r['boilerplate_out']:.4f} | {wall_rate:.1f} | {cpu_rate:.1f} | {cpu_rate / base_rate:.2f}x |")
    for v in variants[1:]:
        v.process.close()


if __name__ == "__main__":
    main()
