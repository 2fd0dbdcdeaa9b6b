"""Reading one big JSONL file into Ray blocks: Ray's own `read_json` and our reader with one task per
file (how both read before byte ranges) against our reader's byte ranges (`pipeline.readers.JsonlRanges`).

The corpus is bench_dedup's e2e corpus (300 real words per document) written `--copies` times into one
file; `--kind instruction` writes each as an instruction and its response (the first and last 150 words),
rows that our reader parses line by line in Python where documents go through Arrow's C++ parser. Each
reader runs alternately, after one warm-up read, in one Ray session; the medians are compared.

    python benchmarks/bench_read.py --docs 100000 --copies 3 --repeats 3 [--kind instruction]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_dedup import e2e_corpus  # noqa: E402

from pipeline import storage  # noqa: E402
from pipeline.normalize import Normalizer  # noqa: E402
from pipeline.readers import RANGE_BYTES, JsonlRanges  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--copies", type=int, default=3, help="the corpus written this many times into the one file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kind", choices=["document", "instruction"], default="document")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        docs = e2e_corpus(args.docs)
        if args.kind == "instruction":
            docs = [{"id": d["id"], "instruction": " ".join(w[:150]), "response": " ".join(w[150:])}
                    for d in docs for w in [d["text"].split()]]
        lines = [json.dumps(d) + "\n" for d in docs]
        with open(path, "w") as f:
            for _ in range(args.copies):
                f.writelines(lines)
        rows = args.docs * args.copies
        print(f"{path.stat().st_size / 2**20:.0f} MiB, {rows:,} rows", flush=True)
        ray.init(include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        files = storage.expand([str(path)], "input.paths")
        norm = Normalizer(args.kind, "corpus")
        readers = {
            "ray.data.read_json": lambda: ray.data.read_json(str(path)),
            "ours, a task per file": lambda: ray.data.read_datasource(JsonlRanges(files, norm, range_bytes=1 << 62)),
            f"ours, ranges of {RANGE_BYTES >> 20} MiB": lambda: ray.data.read_datasource(JsonlRanges(files, norm)),
        }
        for read in readers.values():  # the workers' first imports are no reader's cost
            read().materialize()
        times: dict[str, list[float]] = {name: [] for name in readers}
        for rep in range(args.repeats):
            for name, read in readers.items():
                t0 = time.perf_counter()
                ds = read().materialize()
                times[name].append(time.perf_counter() - t0)
                assert ds.count() == rows, (name, ds.count())
                print(f"  run {rep}: {name} {times[name][-1]:.2f} s", flush=True)
        ray.shutdown()
    ours = statistics.median(times[f"ours, ranges of {RANGE_BYTES >> 20} MiB"])
    for name, t in times.items():
        print(f"{name:28} median {statistics.median(t):6.2f} s ({' '.join(f'{x:.2f}' for x in t)}); "
              f"ranges are {statistics.median(t) / ours:.2f}x faster")


if __name__ == "__main__":
    main()
