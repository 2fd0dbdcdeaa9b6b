"""Which fastText defaults should `pipeline train-classifier` have: held-out AG News accuracy and
training time of the current defaults and of candidates, on fixed seeded 80/20 splits.

Data: shared-data `classification/ag_news/train80.csv` (6,067 news items, 4 topics), title and
description joined, as `bench_classifier.py`. Each --split-seeds value makes its own 80/20 split
(`fasttext_train.split`, as the command holds out); the held-out 20% is used only to score. A
candidate is the default parameters with some overridden (`name=value,...`); `autotune:SECONDS`
runs fastText's autotune for that long against a validation slice (--validation of the TRAINING
part, never the held-out 20%), then retrains the tuned settings on the whole training part.

One training thread by default, because fastText's multi-threaded training is not reproducible
(Hogwild updates); --threads 0 uses every core, as the command does, and --fasttext-seeds repeats
each training to show that spread. Training time is CPU seconds (all threads, autotune included),
which a loaded machine disturbs less than wall time.

    python benchmarks/bench_classifier_defaults.py [--split-seeds 0,1,2,3,4,5,6,7,8,9] [--fasttext-seeds 0] \
        [--candidates loss=softmax defaults "epoch=30" "dim=50" "autotune:60"]
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
from filters.fasttext_model import prepare_text  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "classification" / "ag_news"
CANDIDATES = [
    "loss=softmax", "defaults", "epoch=10", "epoch=30", "lr=1.0", "dim=50", "wordNgrams=1", "wordNgrams=3",
    "bucket=2000000", "minn=3,maxn=6",
]


def parse(candidate: str) -> dict:
    if candidate == "defaults" or candidate.startswith("autotune:"):
        return {}
    params = {}
    for item in candidate.split(","):
        name, value = item.split("=")
        params[name] = _number(value)
    return params


def _number(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def autotuned(train: list[ft.Example], validation_fraction: float, seed: int, seconds: int, threads: int | None) -> dict:
    """fastText's autotune on a slice of `train` only; the tuned settings, to retrain on all of `train`."""
    import fasttext

    fit, validation = ft.split(train, validation_fraction, seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, part in (("fit", fit), ("valid", validation)):
            path = Path(tmp) / f"{name}.txt"
            path.write_text("".join(f"__label__{ex.label} {prepare_text(ex.text)}\n" for ex in part), encoding="utf-8")
            paths.append(str(path))
        model = fasttext.train_supervised(
            input=paths[0], autotuneValidationFile=paths[1], autotuneDuration=seconds, seed=seed,
            thread=threads or os.cpu_count() or 1, verbose=0,
        )
    args = model.f.getArgs()
    return {"lr": args.lr, "epoch": args.epoch, "dim": args.dim, "wordNgrams": args.wordNgrams, "minCount": args.minCount,
            "bucket": args.bucket}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split-seeds", default="0,1,2,3,4,5,6,7,8,9", help="one 80/20 split per seed")
    ap.add_argument("--fasttext-seeds", default="0", help="training repeats per split (differ only with --threads 0)")
    ap.add_argument("--threads", type=int, default=1, help="training threads; 0 = all cores, as the command")
    ap.add_argument("--validation", type=float, default=0.2, help="share of the training part autotune validates on")
    ap.add_argument("--candidates", nargs="+", default=CANDIDATES)
    args = ap.parse_args()
    classes = (DATA / "classes.txt").read_text().split()
    with open(DATA / "train80.csv", newline="", encoding="utf-8") as f:
        examples = [ft.Example(classes[int(c) - 1].replace("/", "_"), f"{t} {d}") for c, t, d in csv.reader(f)]
    split_seeds = [int(s) for s in args.split_seeds.split(",")]
    fasttext_seeds = [int(s) for s in args.fasttext_seeds.split(",")]
    threads = args.threads or None

    print(f"AG News train80.csv: {len(examples)} items; 80/20 splits seeded {split_seeds}; "
          f"fastText seeds {fasttext_seeds}; threads {threads or os.cpu_count()}")
    print(f"defaults: {ft.TRAIN_DEFAULTS}\n")
    print("| candidate | " + " | ".join(f"split {s}" for s in split_seeds) + " | mean | train CPU-s (median) | tuned |")
    print("|---|" + "---|" * len(split_seeds) + "---|---|---|")
    for candidate in args.candidates:
        accuracies, seconds, tuned = {}, [], []
        for split_seed in split_seeds:
            train, test = ft.split(examples, 0.2, split_seed)
            params = parse(candidate)
            tune_s = 0.0
            if candidate.startswith("autotune:"):
                t0 = time.process_time()
                params = autotuned(train, args.validation, split_seed, int(candidate.split(":")[1]), threads)
                tune_s = time.process_time() - t0
                tuned.append(",".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()))
            runs = []
            for seed in fasttext_seeds:
                t0 = time.process_time()
                try:
                    model = ft.train(train, seed=seed, threads=threads, **params)
                except RuntimeError:  # fastText's "Encountered NaN": the settings diverge on this split
                    runs.append(float("nan"))
                    continue
                seconds.append(tune_s + time.process_time() - t0)
                runs.append(ft.evaluate(model, test, len(train)).accuracy)
            accuracies[split_seed] = runs
        cells = [" / ".join(f"{a:.4f}" for a in accuracies[s]) for s in split_seeds]
        mean = statistics.mean(a for runs in accuracies.values() for a in runs)  # nan when any run diverged
        median_s = f"{statistics.median(seconds):.1f}" if seconds else "-"
        print(f"| {candidate} | " + " | ".join(cells) + f" | {mean:.4f} | {median_s} | {'; '.join(tuned)} |",
              flush=True)


if __name__ == "__main__":
    main()
