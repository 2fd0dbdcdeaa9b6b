"""Extraction on a benchmark nothing was tuned on: scrapinghub's article-extraction-benchmark.

181 English news and blog articles with their article bodies, scored by the benchmark's own
`evaluate.py` (shingle precision and recall, averaged over pages). Our engines run as the stage
runs them (bench_extract.OurEngine), beside `trafilatura.extract` with its defaults, interleaved,
speed as pages per CPU-second (medians). The benchmark is not in ../shared: clone it and pass its
folder.

    git clone https://github.com/scrapinghub/article-extraction-benchmark   # at 4a3bc97
    python benchmarks/bench_extract_articles.py --benchmark article-extraction-benchmark [--repeats 3] [--oracle]

`--oracle` bounds what any fallback rule of `auto` could reach here: `auto`'s pages are handed to the
trafilatura engine one at a time in the order that gains most F1 (hindsight no rule has), until F1 0.95,
beside the largest fallback share that 8x trafilatura's speed leaves, from the speeds measured.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extract import OurEngine, TrafilaturaDefaults  # noqa: E402
from extract_fallback_oracle import fallback_room, greedy_fallbacks  # noqa: E402

from filters.extract_auto import SLOW  # noqa: E402


def load(benchmark: Path):
    """The pages, as bench_extract's variants take them, their article bodies, and the benchmark's scorer."""
    truth = json.loads((benchmark / "ground-truth.json").read_text())
    pages = [(item.get("url"), gzip.decompress((benchmark / "html" / f"{key}.html.gz").read_bytes()), [], [])
             for key, item in truth.items()]
    spec = importlib.util.spec_from_file_location("aeb_evaluate", benchmark / "evaluate.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    return pages, [item["articleBody"] for item in truth.values()], scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmark", type=Path, required=True, help="a clone of scrapinghub/article-extraction-benchmark")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--oracle", action="store_true", help="the fallback share a perfect rule would need for F1 0.95")
    args = ap.parse_args()
    pages, bodies, scorer = load(args.benchmark)
    variants = [TrafilaturaDefaults(), OurEngine("trafilatura"), OurEngine("resiliparse"), OurEngine("auto")]
    runs: dict[str, dict] = {}
    for repeat in range(args.repeats):
        for v in variants:
            texts, engines, _, cpu = v.run(pages)
            runs.setdefault(v.name, {"texts": texts, "engines": engines, "cpu": []})["cpu"].append(cpu)
        print(f"repeat {repeat + 1} of {args.repeats} done", file=sys.stderr)

    rates = {v.name: len(pages) / statistics.median(runs[v.name]["cpu"]) for v in variants}
    counts = {v.name: [scorer.string_shingle_matching(true=b, pred=t) for b, t in zip(bodies, runs[v.name]["texts"])]
              for v in variants}
    base_rate = rates[variants[0].name]
    print(f"{len(pages)} pages, {args.repeats} repeats (speed: medians)\n")
    print("| extractor | precision | recall | F1 | pages/CPU-s | vs defaults | fallback share |\n|---|---|---|---|---|---|---|")
    for v in variants:
        m = scorer.metrics_from_tp_fp_fns(counts[v.name])
        fallback = f"{sum(e == SLOW for e in runs[v.name]['engines']) / len(pages):.1%}" if v.name == "ours: auto" else ""
        print(f"| {v.name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {rates[v.name]:.1f} | "
              f"{rates[v.name] / base_rate:.2f}x | {fallback} |")
    if args.oracle:
        oracle(scorer, counts["ours: auto"], counts["ours: trafilatura"], base_rate, rates)
    for v in variants[1:]:
        v.process.close()


def oracle(scorer, fast: list, slow: list, base_rate: float, rates: dict, target: float = 0.95) -> None:
    """Greedy hindsight over each page's shingle counts (`fast`: `auto`'s, `slow`: the trafilatura engine's)
    until `target`."""
    moved, f1 = 0, scorer.metrics_from_tp_fp_fns(fast)["f1"]
    if f1 < target:
        for moved, f1 in greedy_fallbacks(fast, slow, lambda counts: scorer.metrics_from_tp_fp_fns(counts)["f1"]):
            if f1 >= target:
                break
    room = fallback_room(base_rate, rates["ours: resiliparse"], rates["ours: trafilatura"])
    print(f"\noracle: F1 {f1:.4f} after {moved} more pages to trafilatura ({moved / len(fast):.1%} of them, on top of "
          f"auto's own fallbacks); the fallback share 8x leaves after resiliparse's own time: {max(room, 0):.1%}")


if __name__ == "__main__":
    main()
