"""`pipeline train-classifier`: train a fastText classifier for the `quality` stage (or topic labels).

Two ways to give labelled text: a positives file and a negatives file (DCLM's recipe:
reference-quality text vs random web text), or one CSV/JSONL file with a label field (several
labels make a multi-class model, e.g. topics). A seeded share is held out and the model is
measured on it before it is saved: precision, recall and AUC of the positive label for two
labels, accuracy and per-label precision/recall always. The figures are also written next to
the model as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("train-classifier", help="train a fastText classifier and report held-out metrics")
    src = p.add_argument_group("labelled text (positives + negatives, or --data)")
    src.add_argument("--positives", type=Path, help="text to score high: .txt (one per line), .jsonl or .csv (.gz ok)")
    src.add_argument("--negatives", type=Path, help="text to score low, same formats")
    src.add_argument("--data", type=Path, help="one CSV/JSONL file with a label field and text field(s)")
    src.add_argument("--label-field", default="label", help="label field of --data (default: label)")
    src.add_argument("--text-field", default="text", help="text field(s), comma-separated fields are joined (default: text)")
    src.add_argument("--fieldnames", help="column names of a CSV without a header, comma-separated")
    src.add_argument("--positive-label", default="hq", help="label of --positives, and the label scored in binary reports (default: hq)")
    src.add_argument("--negative-label", default="cc", help="label of --negatives (default: cc, as DCLM)")
    p.add_argument("--output", "-o", type=Path, required=True, help="where to save the model (.bin)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share held out for the report (default: 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="training threads (default: all cores)")
    hp = p.add_argument_group("fastText hyper-parameters (defaults: filters.fasttext_train.TRAIN_DEFAULTS)")
    for name, kind in (("epoch", int), ("lr", float), ("dim", int), ("wordNgrams", int), ("minCount", int), ("bucket", int)):
        hp.add_argument(f"--{name}", type=kind, default=None)
    p.set_defaults(func=main)


def main(args) -> int:
    from filters import fasttext_train as ft

    examples = _examples(args, ft)
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise UserError(f"need at least two labels to train a classifier, found {labels or 'none'}")
    if not 0 < args.test_fraction < 1:
        raise UserError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    train, test = ft.split(examples, args.test_fraction, args.seed)
    params = {k: v for k in ("epoch", "lr", "dim", "wordNgrams", "minCount", "bucket") if (v := getattr(args, k)) is not None}

    started = time.perf_counter()
    model = ft.train(train, seed=args.seed, threads=args.threads, **params)
    seconds = time.perf_counter() - started
    positive = args.positive_label if args.positive_label in labels else None
    report = ft.evaluate(model, test, len(train), positive=positive)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(args.output))
    metrics = {**report.as_dict(), "train_seconds": round(seconds, 2), "params": {**ft.TRAIN_DEFAULTS, **params}}
    metrics_path = args.output.with_name(args.output.name + ".metrics.json")
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    _print_report(report, args.output, metrics_path, seconds)
    return 0


def _examples(args, ft) -> list:
    pair = args.positives is not None or args.negatives is not None
    if pair == (args.data is not None):
        raise UserError("give either --positives and --negatives, or --data")
    if pair and (args.positives is None or args.negatives is None):
        raise UserError("--positives and --negatives go together")
    for path in (args.positives, args.negatives, args.data):
        if path is not None and not path.is_file():
            raise UserError(f"file not found: {path}")
    text_fields = [f.strip() for f in args.text_field.split(",") if f.strip()]
    fieldnames = [f.strip() for f in args.fieldnames.split(",")] if args.fieldnames else None
    try:
        if pair:
            examples = ft.examples_from_pair(args.positives, args.negatives, text_fields, args.positive_label, args.negative_label)
        else:
            examples = ft.examples_from_labelled(args.data, args.label_field, text_fields, fieldnames)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(str(e)) from None
    examples = [e for e in examples if e.text.strip()]
    if len(examples) < 10:
        raise UserError(f"only {len(examples)} non-empty labelled texts: too few to train and hold out")
    return examples


def _print_report(report, model_path: Path, metrics_path: Path, seconds: float) -> None:
    print(f"trained on {report.n_train} texts in {seconds:.1f}s, held out {report.n_test}; labels: {', '.join(report.labels)}")
    if report.auc is not None:
        print(f"positive label '{report.positive}': precision {report.precision:.3f}  recall {report.recall:.3f}  AUC {report.auc:.3f}")
    print(f"accuracy {report.accuracy:.3f}")
    for label, stats in report.per_label.items():
        print(f"  {label:<20} precision {stats['precision']:.3f}  recall {stats['recall']:.3f}  support {stats['support']}")
    print(f"model: {model_path}\nmetrics: {metrics_path}")
