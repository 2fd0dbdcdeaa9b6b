"""fastText classifier on AG News: held-out accuracy of a topic model trained by our training code,
and scoring speed (lines per CPU-second) of our classifier path next to bare fastText predict.

Train/test: a seeded 80/20 split of shared-data `classification/ag_news/train80.csv` (6,067
news items, 4 topics), title and description joined, TRAIN_DEFAULTS (bigrams, 20 epochs).
Speed: the held-out lines repeated to --lines, scored with `FastTextClassifier.predict` (our
text preparation included) and with `model.predict` on pre-prepared lines (fastText alone),
medians over --repeats, one thread.

    python benchmarks/bench_classifier.py [--lines 50000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters import fasttext_train as ft  # noqa: E402
from filters.fasttext_classifier import FastTextClassifier  # noqa: E402
from filters.fasttext_model import prepare_text  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "classification" / "ag_news"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    classes = (DATA / "classes.txt").read_text().split()
    with open(DATA / "train80.csv", newline="", encoding="utf-8") as f:
        examples = [ft.Example(classes[int(c) - 1].replace("/", "_"), f"{t} {d}") for c, t, d in csv.reader(f)]
    train, test = ft.split(examples, 0.2, seed=0)

    t0, c0 = time.perf_counter(), time.process_time()
    model = ft.train(train, seed=0)
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    report = ft.evaluate(model, test, len(train))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topics.bin"
        model.save_model(str(path))
        size_mb = path.stat().st_size / 1e6
        classifier = FastTextClassifier(path)
    lines = [ex.text for ex in test] * (args.lines // len(test) + 1)
    lines = lines[: args.lines]
    prepared = [prepare_text(t) for t in lines]
    ours, bare = [], []
    for _ in range(args.repeats):
        c0 = time.process_time()
        classifier.predict(lines)
        ours.append(time.process_time() - c0)
        c0 = time.process_time()
        classifier.model.predict(prepared, k=1)
        bare.append(time.process_time() - c0)

    print(f"AG News: {len(train)} train / {len(test)} held out, 4 classes; model {size_mb:.0f} MB")
    print(f"training: {train_wall:.1f}s wall, {train_cpu:.1f}s CPU (all threads)")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| held-out accuracy | {report.accuracy:.4f} |")
    for label, s in report.per_label.items():
        print(f"| {label} precision / recall | {s['precision']:.3f} / {s['recall']:.3f} |")
    print(f"| lines/CPU-s, FastTextClassifier.predict (with text preparation) | {len(lines) / statistics.median(ours):,.0f} |")
    print(f"| lines/CPU-s, bare fastText predict on prepared lines | {len(lines) / statistics.median(bare):,.0f} |")


if __name__ == "__main__":
    main()
