"""`pipeline train-classifier`: train a fastText classifier for the `quality` stage (or topic labels).

Three ways to give labelled text: a positives file and a negatives file (DCLM's recipe:
reference-quality text vs random web text), one CSV/JSONL file with a label field (several
labels make a multi-class model, e.g. topics), or rows with a numeric score field, such as an
`annotate` run's output folder (FineWeb-Edu's recipe: the LLM's ratings of a sample, learned by a
cheap classifier that then scores the whole corpus): the rounded score is the label, or with
`--min-score` the positive label at or above it; with `--embedding-model` the score itself is learnt
by a regression head on sentence embeddings (FineWeb-Edu's classifier). For scores the report adds the agreement of
predicted and annotated scores on the held-out rows (Spearman, Pearson, share within one point). A seeded share is held out and the model is
measured on it before it is saved: precision, recall and AUC of the positive label for two
labels, accuracy and per-label precision/recall always. The figures are also written next to
the model as JSON.

Inputs and the model may be local paths or object-storage URIs: the output is checked to be
writable before training, and fastText, which saves only to a local file, saves into a temporary
folder from which the model is copied to its place (atomically, as every storage write).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from pipeline import storage
from pipeline.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("train-classifier", help="train a fastText classifier and report held-out metrics")
    src = p.add_argument_group("labelled text (positives + negatives, or --data)")
    src.add_argument("--positives", help="text to score high: .txt (one per line), .jsonl or .csv (.gz ok); a path or URI")
    src.add_argument("--negatives", help="text to score low, same formats")
    src.add_argument("--data", help="one CSV/JSONL file with a label field and text field(s); with --score-field also "
                     "Parquet, or a run's output folder (its shards)")
    src.add_argument("--label-field", default="label", help="label field of --data (default: label)")
    src.add_argument("--score-field", help="a numeric field of --data to learn instead of a label (e.g. annotation_score); "
                     "rows without a score are left out")
    src.add_argument("--min-score", type=float, help="with --score-field: a binary model, --positive-label at or above "
                     "this score, --negative-label below (for the quality stage)")
    src.add_argument("--embedding-model", help="with --score-field: learn the score with a ridge regression head on this "
                     "sentence-transformers model (a folder or Hub id) instead of fastText; --output is then a .json head")
    src.add_argument("--text-field", default="text", help="text field(s), comma-separated fields are joined (default: text)")
    src.add_argument("--fieldnames", help="column names of a CSV without a header, comma-separated")
    src.add_argument("--positive-label", default="hq", help="label of --positives, and the label scored in binary reports (default: hq)")
    src.add_argument("--negative-label", default="cc", help="label of --negatives (default: cc, as DCLM)")
    p.add_argument("--output", "-o", required=True, help="where to save the model (.bin): a path or URI")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share held out for the report (default: 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="training threads (default: all cores)")
    hp = p.add_argument_group("fastText hyper-parameters (defaults: filters.fasttext_train.TRAIN_DEFAULTS)")
    for name, kind in (("epoch", int), ("lr", float), ("dim", int), ("wordNgrams", int), ("minCount", int), ("bucket", int)):
        hp.add_argument(f"--{name}", type=kind, default=None)
    hp.add_argument("--loss", choices=("ova", "softmax", "hs"), default=None)
    p.set_defaults(func=main)


def main(args) -> int:
    from filters import fasttext_train as ft

    examples, skipped = _examples(args, ft)
    if skipped:
        print(f"left out {skipped:,} rows with no '{args.score_field or args.label_field}'")
    output = storage.locate(args.output)
    why = storage.probe_writable(output.parent)
    if why:
        raise UserError(f"--output: cannot write {output.uri}: {why}")
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise UserError(f"need at least two labels to train a classifier, found {labels or 'none'}")
    if not 0 < args.test_fraction < 1:
        raise UserError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    train, test = ft.split(examples, args.test_fraction, args.seed)
    if args.embedding_model:
        return _train_head(args, examples, train, test, output, skipped)
    params = {k: v for k in ("epoch", "lr", "dim", "wordNgrams", "minCount", "bucket", "loss") if (v := getattr(args, k)) is not None}

    started = time.perf_counter()
    try:
        model = ft.train(train, seed=args.seed, threads=args.threads, **params)
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
        raise UserError(f"training diverged (fastText: {storage.first_line(e)}); try a lower --lr") from None
    seconds = time.perf_counter() - started
    positive = args.positive_label if args.positive_label in labels else None
    report = ft.evaluate(model, test, len(train), positive=positive, ordinal=bool(args.score_field) and args.min_score is None)

    with tempfile.TemporaryDirectory(prefix="pipeline-classifier-") as tmp:
        model.save_model(str(Path(tmp) / output.name))
        storage.locate(Path(tmp) / output.name).copy_to(output)
    scored = {"score_field": args.score_field, "unscored_rows": skipped} if args.score_field else {"unlabelled_rows": skipped}
    metrics = {**report.as_dict(), **scored, "train_seconds": round(seconds, 2), "params": {**ft.TRAIN_DEFAULTS, **params, "lr": model.lr}}  # the lr it converged at
    metrics_path = output.parent / f"{output.name}.metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    _print_report(report, output, metrics_path, seconds)
    return 0


def _train_head(args, examples, train, test, output, unscored: int) -> int:
    """FineWeb-Edu's classifier: the scores learnt by a regression head on frozen sentence embeddings."""
    import numpy as np

    from filters import embedding_head
    from filters.embeddings import Embedder
    from filters.fasttext_train import Report, auc, ordinal_agreement

    if not embedding_head.is_head(output.name):
        raise UserError(f"--output: a regression head is saved as JSON: name it .json, not {output.name}")
    started = time.perf_counter()
    embedder = Embedder(args.embedding_model)
    scores = np.array([e.score for e in examples])
    head = embedding_head.fit(args.embedding_model, embedder.encode([e.text for e in train]), [e.score for e in train],
                              scale=(float(scores.min()), float(scores.max())))
    seconds = time.perf_counter() - started
    gold = np.array([e.score for e in test])
    pred = np.clip(head.predict(embedder.encode([e.text for e in test])), *head.scale)
    labels = sorted({e.label for e in examples})
    two = len(labels) == 2 and len(set(gold.tolist())) == 2  # a yes/no rubric: how well the prediction ranks the yeses
    report = Report(len(train), len(test), labels, accuracy=float((np.round(pred) == np.round(gold)).mean()),
                    positive=labels[-1] if two else None, auc=auc(pred, gold == gold.max()) if two else None,
                    agreement=ordinal_agreement(gold, pred))
    with tempfile.TemporaryDirectory(prefix="pipeline-classifier-") as tmp:
        head.save(Path(tmp) / output.name)
        storage.locate(Path(tmp) / output.name).copy_to(output)
    metrics = {**report.as_dict(), "score_field": args.score_field, "unscored_rows": unscored, "train_seconds": round(seconds, 2),
               "head": {"embedding_model": args.embedding_model, "alpha": head.alpha, "scale": list(head.scale)}}
    metrics_path = output.parent / f"{output.name}.metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    _print_report(report, output, metrics_path, seconds)
    return 0


def _examples(args, ft) -> tuple[list, int]:
    """The labelled examples, and how many rows had no score (with --score-field) or no label (--data)."""
    pair = args.positives is not None or args.negatives is not None
    if pair == (args.data is not None):
        raise UserError("give either --positives and --negatives, or --data")
    if pair and (args.positives is None or args.negatives is None):
        raise UserError("--positives and --negatives go together")
    if args.min_score is not None and not args.score_field:
        raise UserError("--min-score goes with --score-field")
    if args.embedding_model and (not args.score_field or args.min_score is not None):
        raise UserError("--embedding-model learns a score: give --score-field, without --min-score")
    skipped = 0
    text_fields = [f.strip() for f in args.text_field.split(",") if f.strip()]
    fieldnames = [f.strip() for f in args.fieldnames.split(",")] if args.fieldnames else None
    try:
        if args.score_field:
            examples, skipped = ft.examples_from_scores(_rows(args.data, fieldnames), args.data, args.score_field, text_fields,
                                                         args.min_score, args.positive_label, args.negative_label)
        elif pair:
            with _open(args.positives) as pos, _open(args.negatives) as neg:
                examples = (ft.examples_from_texts(pos, args.positives, args.positive_label, text_fields)
                            + ft.examples_from_texts(neg, args.negatives, args.negative_label, text_fields))
        else:
            with _open(args.data) as f:
                examples, skipped = ft.examples_from_labelled(f, args.data, args.label_field, text_fields, fieldnames)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(str(e)) from None
    except OSError as e:  # the store failing mid-read
        raise UserError(f"reading labelled text: {storage.first_line(e)}") from None
    examples = [e for e in examples if e.text.strip()]
    if len(examples) < 10:
        raise UserError(f"only {len(examples)} non-empty labelled texts: too few to train and hold out"
                        + (f" ({skipped} rows had no '{args.score_field or args.label_field}')" if skipped else ""))
    return examples, skipped


def _rows(uri: str, fieldnames: list[str] | None):
    """The rows of a CSV/JSONL/Parquet file, or of every shard of a run's output folder (its data/, or the folder itself)."""
    from filters import fasttext_train as ft

    folder = Path(uri) / "data" if (Path(uri) / "data").is_dir() else Path(uri)
    if folder.is_dir():
        files = sorted(folder.glob("*.parquet")) or sorted(folder.glob("*.jsonl"))
        if not files:
            raise UserError(f"{uri}: no .parquet or .jsonl shards in {folder}")
    else:
        files = [uri]
    for file in files:
        if str(file).endswith(".parquet"):
            import pyarrow.parquet as pq

            if not storage.locate(str(file)).is_file():
                raise UserError(f"file not found: {file}")
            with storage.local_copy(str(file)) as local:
                yield from pq.read_table(local).to_pylist()
        else:
            with _open(str(file)) as f:
                yield from ft.read_rows(f, str(file), fieldnames)


def _open(uri: str):
    """A labelled file's text, from disk or object storage; its absence or the store's refusal is the user's."""
    location = storage.locate(uri)
    try:
        if not location.is_file():
            raise UserError(f"file not found: {uri}")
        return storage.open_text(location, errors="replace", newline="")
    except OSError as e:
        raise UserError(f"{uri}: {storage.first_line(e)}") from None


def _print_report(report, model_path, metrics_path, seconds: float) -> None:
    print(f"trained on {report.n_train} texts in {seconds:.1f}s, held out {report.n_test}; labels: {', '.join(report.labels)}")
    if report.auc is not None:
        pr = f"precision {report.precision:.3f}  recall {report.recall:.3f}  " if report.precision is not None else ""
        auc = "no AUC: the held-out rows all have one label" if math.isnan(report.auc) else f"AUC {report.auc:.3f}"
        print(f"positive label '{report.positive}': {pr}{auc}")
    print(f"accuracy {report.accuracy:.3f}")
    if report.agreement:
        a = report.agreement
        parts = [f"{k} {a[k]:.3f}" for k in ("spearman", "pearson") if a[k] is not None]
        parts += [f"within 1 point {a['within_1']:.3f}", f"mean abs error {a['mean_abs_error']:.3f}"]
        print(f"agreement with the held-out scores: {'  '.join(parts)}")
    for label, stats in report.per_label.items():
        print(f"  {label:<20} precision {stats['precision']:.3f}  recall {stats['recall']:.3f}  support {stats['support']}")
    print(f"model: {model_path}\nmetrics: {metrics_path}")
