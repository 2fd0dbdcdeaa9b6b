"""`pipeline contamination-report`: which benchmark items leaked into which data, before anyone evaluates.

No pipeline config needed: give the data (Parquet, JSONL, or a Hugging Face dataset folder) and the
benchmarks, on local disk or in object storage, where the report may go too. The n-gram index is
built once on the driver; Ray Data reads every source and scans it with an actor pool
(`map_batches`), and the hits are reduced per (source, item) by Ray tasks partitioned by item, so
only one row per contaminated item ever reaches the driver. Output: report.json (byte-identical
for the same inputs), report.md and a self-contained report.html.
"""

from __future__ import annotations

import os

from pipeline import storage
from pipeline.errors import UserError

SPAN_CHARS = 1000  # a longer span is cut in the report (its offsets are exact)
COUNTS = -1  # the item_index of the rows that count what was scanned, reduced with the hits


def register(sub) -> None:
    p = sub.add_parser("contamination-report", help="which benchmark items appear in the data, where, and how much")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="Parquet or JSONL files/folders/globs, or a Hugging Face dataset folder (hf:NAME for the Hub)")
    p.add_argument("--benchmarks", nargs="+", required=True, metavar="NAME|FILE",
                   help="registered names (humaneval gsm8k mmlu ...; commas work too) or benchmark files")
    p.add_argument("--fields", default="", help="for benchmark files: comma-separated fields to check (default: question,answer)")
    p.add_argument("--benchmarks-dir", default=os.environ.get("PIPELINE_BENCHMARKS_DIR"),
                   help="local copies of registered benchmarks (default $PIPELINE_BENCHMARKS_DIR, else the Hub)")
    p.add_argument("--out", default="contamination-report", help="output folder (default: ./contamination-report)")
    p.add_argument("--format", choices=["auto", "parquet", "jsonl", "hf"], default="auto", help="input format")
    p.add_argument("--view", default="text", help="text to check in instruction data: text, instruction, response, conversation")
    p.add_argument("--ngram", type=int, default=13, help="words per n-gram (default 13)")
    p.add_argument("--min-words", type=int, default=6, help="questions this long (< ngram) are matched whole")
    p.add_argument("--min-words-answer", type=int, default=8, help="choices and answers this long are matched whole")
    p.add_argument("--max-item-frequency", type=int, default=10, help="ignore n-grams in more benchmark items than this")
    p.add_argument("--background", nargs="*", default=[], metavar="FILE", help="ordinary text whose n-grams are ignored")
    p.add_argument("--min-coverage", type=float, default=0.0, help="count an item only if this share of its n-grams is found")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local Ray, or RAY_ADDRESS)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=main)


def main(args) -> int:
    from filters.contamination import BenchmarkNotFound, build_index
    from filters.contamination.benchmarks import resolve, unreachable
    from pipeline import contamination_render, hub, output_dir
    from pipeline.config import RayConfig
    from pipeline.progress import Progress
    from pipeline.ray_session import ray_session
    from pipeline.records import TEXT_VIEWS

    if args.view not in TEXT_VIEWS:
        raise UserError(f"--view '{args.view}' is not one of {', '.join(TEXT_VIEWS)}")
    if not (1 <= args.min_words <= args.ngram and 1 <= args.min_words_answer <= args.ngram):
        raise UserError(f"--min-words and --min-words-answer must be between 1 and --ngram ({args.ngram})")
    inputs = [_input_config(path, args.format) for path in args.data]
    names = [n for entry in args.benchmarks for n in entry.split(",") if n]
    fields = [f for f in args.fields.split(",") if f] or ["question", "answer"]
    progress = Progress(enabled=not args.quiet)
    try:  # before any download: offline, a benchmark with no local copy is one quick line, not a minute of retries
        missing = [why for spec in resolve(names, fields) if (why := unreachable(
            spec, args.benchmarks_dir, hub.dataset_unavailable, "--benchmarks-dir (or PIPELINE_BENCHMARKS_DIR)"))]
        if missing:
            raise UserError("\n".join(missing))
        index, sizes = build_index(names, args.benchmarks_dir, fields=fields, n=args.ngram, min_words=args.min_words,
                                   min_words_answer=args.min_words_answer, max_item_frequency=args.max_item_frequency,
                                   background=args.background)
    except BenchmarkNotFound as e:
        raise UserError(str(e)) from None
    progress.note(f"indexed {index.stats.items:,} items of {', '.join(sizes)}: {index.stats.grams:,} n-grams")
    out = storage.locate(args.out)
    with output_dir.local_logs(out / "logs") as logs, \
            ray_session(RayConfig(address=args.ray_address, num_cpus=args.num_cpus), progress, logs):
        _check_nodes_see(inputs)
        scanned, items = scan(inputs, index, args.view, args.min_coverage)
    report = contamination_render.build(
        sources=[c.name for c in inputs], scanned=scanned, items=items, sizes=sizes, index=index,
        settings={"ngram": args.ngram, "min_words": args.min_words, "min_words_answer": args.min_words_answer,
                  "max_item_frequency": args.max_item_frequency,
                  "min_coverage": args.min_coverage, "view": args.view, "background": list(args.background)})
    contamination_render.write(out, report)
    progress.note(f"report: {(out / 'report.html').uri} ({report['totals']['items_contaminated']:,} items contaminated)")
    return 0


PAGES = {"warc": "WARC files", "html": "HTML files"}  # what the run reads but holds no text until extracted


def _input_config(path: str, fmt: str):
    """The input a `--data` path names, as a run's config would give it; every mistake found before Ray starts."""
    from pipeline.config import InputConfig
    from pipeline.readers import format_of

    if path.startswith("hf:"):
        if not path[3:]:
            raise UserError("--data hf: needs a dataset name after 'hf:' (hf:NAME)")
        return InputConfig(format="hf", dataset=path[3:], name=path)
    files = storage.expand([path], "--data")
    if fmt == "auto":
        fmt = format_of(path, files)
    if fmt is None:
        raise UserError(f"--data {path}: cannot tell the format; give --format parquet, jsonl or hf")
    if fmt in PAGES:
        raise UserError(f"--data {path}: {PAGES[fmt]} are web pages, and the report checks text: extract it with "
                        "`pipeline run` (an `extract` stage) and give the run's output")
    if fmt == "hf":
        return InputConfig(format="hf", dataset=path, name=path)
    return InputConfig(format=fmt, paths=[path], name=path)


def _check_nodes_see(inputs) -> None:
    """On a cluster of several nodes, each must see the local data files its workers read (`node_paths`): one
    line per --data path, not a failed read deep in Ray."""
    from pipeline import node_paths

    files = [(c.name, f.path) for c in inputs for f in storage.expand(c.paths, "--data") if f.is_local]
    unseen, _ = node_paths.unseen([path for _, path in files])
    said = {}
    for (name, path), nodes in zip(files, unseen):
        if nodes and name not in said:
            said[name] = f"--data {name}: {node_paths.said(path, nodes)}"
    if said:
        raise UserError("\n".join(said.values()))


def _to_text(batch, source: str, view: str):
    """Any record kind to one schema: (source, row id, the row's texts joined, where each lies in it, readable?,
    the hits a `decontaminate` stage's semantic pass recorded in the row, as JSON)."""
    import json

    import pyarrow as pa

    from filters.contamination.rows import RowText
    from pipeline.records import live_mask, row_texts

    n = batch.num_rows
    readable = live_mask(batch)
    rows = [RowText.join(texts) for texts in row_texts(batch, view)]
    piece = pa.struct([("field", pa.string()), ("message", pa.int64()), ("start", pa.int64()), ("end", pa.int64())])
    pieces = pa.array([list(r.pieces) for r in rows], pa.list_(piece))
    recorded = _recorded_hits(batch)
    semantic = [json.dumps(found) if (found := [h for h in hits or () if h.get("method") == "semantic" and h.get("verdict") == "yes"])
                else None for hits in recorded]
    return pa.table({"source": pa.array([source] * n, pa.string()), "id": batch.column("id").cast(pa.string()),
                     "text": pa.array([r.text for r in rows], pa.string()), "pieces": pieces, "readable": readable,
                     "semantic": pa.array(semantic, pa.string())})


def _recorded_hits(batch) -> list:
    """Each row's `contamination` column as a run wrote it: the readers keep a column they do not know in
    the row's `meta`, so that is where it is read back."""
    from pipeline.records import loads_meta

    if "contamination" in batch.schema.names:
        return batch.column("contamination").to_pylist()
    if "meta" not in batch.schema.names:
        return [None] * batch.num_rows
    return [loads_meta(m).get("contamination") for m in batch.column("meta").to_pylist()]


HIT_FIELDS = [("source", "string"), ("benchmark", "string"), ("item_id", "string"), ("item_index", "int64"),
              ("row_id", "string"), ("coverage", "double"), ("matched", "int64"), ("field", "string"), ("message", "int64"),
              ("start", "int64"), ("end", "int64"), ("span", "string"), ("rows_scanned", "int64"), ("rows_unreadable", "int64"),
              ("method", "string"), ("cosine", "double"), ("reason", "string"), ("judge", "string")]


class _Scanner:
    """One per Ray worker: one row per (row, item) hit, and per source a COUNTS row of what was scanned. The
    hits of a run's semantic pass, recorded in the data, are hits too (coverage 0, with the judge's reason):
    the report cannot judge anew, it shows what the run's judge decided."""

    def __init__(self, index, min_coverage: float):
        self.index = index
        self.min_coverage = min_coverage
        self.position = {(it.benchmark, it.item_id): i for i, it in enumerate(index.items)}

    def __call__(self, batch):
        import json

        import pyarrow as pa

        from filters.contamination.rows import Located, RowText, longest

        out: dict[str, list] = {name: [] for name, _ in HIT_FIELDS}

        def add(**values):
            for k in out:
                out[k].append(values.get(k))

        sources = batch.column("source").to_pylist()
        readable = batch.column("readable").to_pylist()
        for source in sorted(set(sources)):
            mine = [ok for s, ok in zip(sources, readable) if s == source]
            add(source=source, item_index=COUNTS, rows_scanned=sum(mine), rows_unreadable=len(mine) - sum(mine))
        rows = [RowText(t if ok else "", tuple(tuple(p.values()) for p in pieces)) for t, pieces, ok in
                zip(batch.column("text").to_pylist(), batch.column("pieces").to_pylist(), readable)]
        ids = batch.column("id").to_pylist()
        semantic = batch.column("semantic").to_pylist()
        for row, row_id, source, hits, judged in zip(rows, ids, sources, self.index.scan([r.text for r in rows], self.min_coverage),
                                                     semantic):
            for h in hits:
                span = longest(row.locate(h.spans))
                add(source=source, benchmark=h.item.benchmark, item_id=h.item.item_id,
                    item_index=self.position[(h.item.benchmark, h.item.item_id)], row_id=row_id,
                    coverage=round(h.coverage, 6), matched=h.matched, field=span.field, message=span.message,
                    start=span.start, end=span.end, span=row.quote(span)[:SPAN_CHARS], rows_scanned=0, rows_unreadable=0,
                    method="ngram")
            for h in json.loads(judged) if judged else ():
                places = {(p[0], p[1]) for p in row.pieces}
                spans = [Located(**s) for s in h["spans"] if (s["field"], s["message"]) in places]
                if (h["benchmark"], h["item_id"]) not in self.position or not spans:
                    continue  # a benchmark this report was not asked about, or a text its --view leaves out
                span = longest(spans)
                add(source=source, benchmark=h["benchmark"], item_id=h["item_id"], item_index=self.position[(h["benchmark"], h["item_id"])],
                    row_id=row_id, coverage=0.0, matched=0, field=span.field, message=span.message, start=span.start,
                    end=span.end, span=row.quote(span)[:SPAN_CHARS], rows_scanned=0, rows_unreadable=0, method="semantic",
                    cosine=h["cosine"], reason=h["reason"], judge=h["judge"])
        schema = pa.schema([(name, pa.type_for_alias(t)) for name, t in HIT_FIELDS])
        return pa.Table.from_pydict(out, schema=schema)


def _by_item(batch, number: int, parts: int):
    import numpy as np
    import pyarrow as pa

    return batch.append_column("part", pa.array(np.mod(batch.column("item_index").to_numpy(), parts).astype(np.int32)))


def _reduce_items(table):
    """Every (source, item) group of a partition to its one row (`_reduce`)."""
    import pyarrow as pa

    table = table.sort_by([("source", "ascending"), ("item_index", "ascending")])
    keys = list(zip(table.column("source").to_pylist(), table.column("item_index").to_pylist()))
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]] + [len(keys)]
    groups = [_reduce(table.slice(a, b - a)) for a, b in zip(starts[:-1], starts[1:])]
    return pa.concat_tables(groups) if groups else table.append_column("rows", pa.nulls(0, pa.int64()))


def _reduce(group):
    """A (source, item) group to its best hit (best coverage, then smallest row id) and how many rows
    hold the item; a (source, COUNTS) group to the rows scanned and unreadable."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if group.column("item_index")[0].as_py() == COUNTS:
        first = group.slice(0, 1)
        for name in ("rows_scanned", "rows_unreadable"):
            first = first.set_column(first.schema.get_field_index(name), name, pa.array([pc.sum(group[name]).as_py()], pa.int64()))
        return first.append_column("rows", pa.array([0], pa.int64()))
    order = pc.sort_indices(group, [("coverage", "descending"), ("row_id", "ascending"), ("start", "ascending")])
    return group.take(order.slice(0, 1)).append_column("rows", pa.array([group.num_rows], pa.int64()))


def scan(inputs, index, view: str, min_coverage: float) -> tuple[dict[str, dict], list[dict]]:
    """Per source: rows scanned and unreadable; and one best hit per (source, item), sorted.

    One Ray Data pass reads and scans (an actor pool holds the index); its hits and scan counts,
    partitioned by item, are then reduced by plain Ray tasks (pipeline/blocks.py), so the driver
    only receives a row per contaminated item and per source. A Ray Data groupby did the same
    reduction in about 3 s on 2 cores whatever the number of hits (its shuffle starts workers of
    its own); the tasks take a few milliseconds.
    """
    import ray
    import ray.data

    from pipeline import blocks
    from pipeline.readers import read_input

    cpus = int(ray.cluster_resources().get("CPU", 1))
    texts = [read_input(c)[0].map_batches(_to_text, fn_args=(c.name, view), batch_format="pyarrow") for c in inputs]
    data = texts[0].union(*texts[1:]) if len(texts) > 1 else texts[0]
    found = data.map_batches(_Scanner, fn_constructor_args=(index, min_coverage), batch_format="pyarrow",
                             batch_size=512, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus)))
    by_item = blocks.map_partitioned(_by_item, blocks.slices(found.materialize(), cpus), cpus, cpus)
    reduced = blocks.gather(blocks.reduce_partitions(_reduce_items, by_item))
    scanned = {c.name: {"rows_scanned": 0, "rows_unreadable": 0} for c in inputs}
    items = []
    for r in (row for table in reduced for row in table.to_pylist()):
        if r["item_index"] == COUNTS:
            scanned[r["source"]] = {"rows_scanned": r["rows_scanned"], "rows_unreadable": r["rows_unreadable"]}
        else:
            items.append(r)
    return scanned, sorted(items, key=lambda r: (r["source"], r["item_index"]))
