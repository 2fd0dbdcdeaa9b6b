"""The web chain extract (resiliparse) -> language -> heuristics -> quality, in pages per second per core.

Corpus: the 990 real pages of trafilatura's evaluation set (shared data), raw gzipped HTML.
Two measurements in one run:
- filters: the code each stage runs (triage + charset decoding, resiliparse in the killable
  child, lid.176, the Gopher/C4/FineWeb rules, a fastText classifier) called in one process in
  batches of 256, all pages through every step (as if nothing were dropped, the worst case);
  pages per CPU-second of the parent plus the extraction child is pages/s per core;
  median over --repeats.
- runner (--runner): `pipeline run` on the same pages (format html) with the same four stages,
  pages / (sum of the stages' wall seconds x cores), with the stages fused into one Ray pass
  (the default) and with a pass per stage (`fuse: false`), alternating, median over --repeats.
  It includes Ray scheduling and checkpointing, and on a shared machine it measures the
  machine's load as much as our code.
The quality model is a bigram fastText model trained here on AG News (Sci/Tech vs the rest):
its speed, not its judgement, is what the chain needs.

    python benchmarks/bench_chain.py [--repeats 3] [--runner]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters import fasttext_train as ft  # noqa: E402
from filters.extract_process import ExtractorProcess, Page  # noqa: E402
from filters.fasttext_classifier import FastTextClassifier  # noqa: E402
from filters.heuristics import Heuristics  # noqa: E402
from filters.language import LanguageIdentifier  # noqa: E402

from bench_extract import child_cpu_seconds  # noqa: E402  (same folder)

SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
PAGES = SHARED / "extraction" / "trafilatura_eval" / "html"
BATCH = 256


def quality_model(tmp: Path) -> Path:
    with open(SHARED / "classification" / "ag_news" / "train80.csv", newline="", encoding="utf-8") as f:
        examples = [ft.Example("hq" if c == "4" else "cc", f"{t} {d}") for c, t, d in csv.reader(f)]
    path = tmp / "quality.bin"
    ft.train(examples, seed=0).save_model(str(path))
    return path


def filters_chain(raw_pages: list[bytes], model: Path, repeats: int) -> tuple[float, dict]:
    extractor = ExtractorProcess("resiliparse", timeout_s=30)
    extractor.extract_many([Page(b"<p>warm</p>")])
    lid, rules, classifier = LanguageIdentifier(), Heuristics.build(), FastTextClassifier(model)
    step_cpu = {"extract": [], "language": [], "heuristics": [], "quality": []}
    totals = []
    for _ in range(repeats):
        pid = extractor._proc.pid
        spent = dict.fromkeys(step_cpu, 0.0)
        for start in range(0, len(raw_pages), BATCH):
            chunk = raw_pages[start : start + BATCH]
            c0, cc0 = time.process_time(), child_cpu_seconds(pid)
            texts = [o.text for o in extractor.extract_many([Page(raw) for raw in chunk])]
            c1, cc1 = time.process_time(), child_cpu_seconds(pid)
            spent["extract"] += c1 - c0 + cc1 - cc0
            lid.predict(texts)
            c2 = time.process_time()
            spent["language"] += c2 - c1
            cleaned = [rules.check(t)[1] for t in texts]
            c3 = time.process_time()
            spent["heuristics"] += c3 - c2
            classifier.score(cleaned, "hq")
            spent["quality"] += time.process_time() - c3
        totals.append(sum(spent.values()))
        for k, v in spent.items():
            step_cpu[k].append(v)
    extractor.close()
    return statistics.median(totals), {k: statistics.median(v) for k, v in step_cpu.items()}


def runner_chain(model: Path, tmp: Path, fuse: bool) -> tuple[float, int, dict]:
    config = tmp / "chain.yaml"
    out = tmp / f"out-{fuse}"
    shutil.rmtree(out, ignore_errors=True)
    config.write_text(json.dumps({
        "name": "bench-chain",
        "fuse": fuse,
        "input": {"format": "html", "paths": [str(PAGES / "*.html.gz")]},
        "output": {"path": str(out)},
        "stages": [
            {"extract": {"engine": "resiliparse"}},
            {"language": {"min_score": 0.0}},
            {"heuristics": {}},
            {"quality": {"model": str(model), "min_score": 0.0}},
        ],
    }))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--quiet", str(config)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed:\n{proc.stderr[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())
    stages = [s for s in stats["stages"] if s["name"] != "read"]
    return sum(s["wall_s"] for s in stages), stages[0]["rows_in"], {s["name"]: s["wall_s"] for s in stages}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runner", action="store_true", help="also time `pipeline run` on the same pages")
    args = ap.parse_args()
    raw_pages = [gzip.decompress(p.read_bytes()) for p in sorted(PAGES.glob("*.html.gz"))]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = quality_model(tmp)
        total, steps = filters_chain(raw_pages, model, args.repeats)
        print(f"{len(raw_pages)} pages, medians over {args.repeats} repeats\n")
        print("| chain (resiliparse engine) | pages/s per core |")
        print("|---|---|")
        print(f"| whole chain, filter functions, CPU time | {len(raw_pages) / total:.1f} |")
        for step, seconds in steps.items():
            print(f"| {step} alone | {len(raw_pages) / seconds:.1f} |")
        if args.runner:
            cores = os.cpu_count() or 1
            walls: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeats):
                for fuse in (True, False):
                    wall, n, per_stage = runner_chain(model, tmp, fuse)
                    walls[fuse].append(wall)
                    print(f"runner ({'one pass' if fuse else 'a pass per stage'}): stage wall seconds {per_stage}", file=sys.stderr)
            for fuse, label in ((True, "stages fused into one pass (default)"), (False, "a pass per stage (`fuse: false`)")):
                print(f"| whole chain through `pipeline run`, {label}, {cores} cores, wall | "
                      f"{n / (statistics.median(walls[fuse]) * cores):.1f} |")
            ratios = [b / a for a, b in zip(walls[True], walls[False])]
            print(f"\nfused vs a pass per stage: {statistics.median(ratios):.2f}x (median of paired ratios {[round(r, 2) for r in ratios]})")


if __name__ == "__main__":
    main()
