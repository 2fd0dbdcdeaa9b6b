"""The run statistics' word counts (`records.whitespace_tokens`, on every row of every pass) against
Python's `len(text.split())` and Arrow's Unicode split, on three kinds of text:

- mixed: the dedup benchmark's 300-word documents of real words (two thirds of them hold a
  non-ASCII character);
- ascii: the 6,067 AG News items of the labelled set, ten times, their few non-ASCII characters taken out;
- html: the 990 real web pages of the extraction set as raw HTML (German, no-break spaces, tabs).

All three must give Python's counts; the table shows the best and the median of the repeats and the
ratio to each peer.

    python benchmarks/bench_word_counts.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dedup import DATA, e2e_corpus  # noqa: E402

from pipeline.records import whitespace_tokens  # noqa: E402

BATCH = 4096  # rows per call, about a pass's block


def corpora() -> dict[str, list[str]]:
    with open(DATA / "classification/ag_news/train80.csv", newline="") as f:
        ascii_rows = [f"{r[1]}. {r[2]}".encode("ascii", "ignore").decode() for r in csv.reader(f)] * 10
    pages = sorted((DATA / "extraction/trafilatura_eval/html").glob("*.gz"))
    return {
        "mixed": [d["text"] for d in e2e_corpus(20_000)],
        "ascii": ascii_rows,
        "html": [gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in pages],
    }


def arrow_split(texts: pa.Array) -> pa.Array:
    """Counting with Arrow's split, as a pyarrow user would (and as the statistics did before)."""
    trimmed = pc.utf8_trim_whitespace(pc.fill_null(texts, ""))
    return pc.if_else(pc.equal(trimmed, ""), 0, pc.list_value_length(pc.utf8_split_whitespace(trimmed)))


def python_split(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def timed(fn, batches, repeats: int) -> tuple[list[float], list[int]]:
    times, counts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        counts = [c for b in batches for c in fn(b)]
        times.append(time.perf_counter() - t0)
    return times, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'text':6} {'rows':>7} {'MB':>6}  {'ours (best / median)':>22}  {'Arrow split':>16}  {'Python split':>16}")
    for name, texts in corpora().items():
        lists = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
        arrays = [pa.array(b, pa.string()) for b in lists]
        ours, ours_counts = timed(lambda b: whitespace_tokens(b).to_pylist(), arrays, args.repeats)
        arrow, arrow_counts = timed(lambda b: arrow_split(b).to_pylist(), arrays, args.repeats)
        python, python_counts = timed(python_split, lists, args.repeats)
        assert ours_counts == python_counts == arrow_counts, name
        best, med = min(ours), statistics.median(ours)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        print(f"{name:6} {len(texts):7,} {mb:6.1f}  {best:9.3f} / {med:7.3f} s  "
              f"{min(arrow) / best:5.2f}x / {statistics.median(arrow) / med:4.2f}x  "
              f"{min(python) / best:5.2f}x / {statistics.median(python) / med:4.2f}x", flush=True)


if __name__ == "__main__":
    main()
