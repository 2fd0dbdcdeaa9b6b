"""`decontaminate`: find benchmark items in the rows and flag them, drop the rows, or cut the leaks out.

The n-gram index over every benchmark item is built once, on the driver, in `prepare()`, and
travels to the workers with the stage. Every text of a row is read (a document's text; the messages of
an instruction; a preference's prompt, chosen and rejected), scanned as one (`filters.contamination.rows`).
Each row gets a `contamination` column: the items found in it, with the share of each item's n-grams
that matched, the character spans of the matches in the fields they lie in, and the field of the
longest. See docs/contamination.md for the method.

With `semantic:` set, rows the n-grams found clean go through the semantic pass for paraphrases
(`filters.contamination.semantic`): the benchmark items are embedded once, on the driver, in
`prepare()` with the index; each worker loads the embedding model and opens the judge's client once,
in `setup()`, embeds the rows' windows and asks the judge about each candidate pair. A yes is a hit
(`method: semantic`, with the cosine, the verdict and the judge's reason) and the action applies to
it; a pair the judge could not decide marks its row (`verdict: error`) and, unless the action is
`flag`, drops it as `contamination_unjudged`: a row is never passed as clean for want of a verdict.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from filters.contamination import BenchmarkNotFound, Hit, build_index
from filters.contamination.actions import Action, cut_spans
from filters.contamination.benchmarks import REGISTRY, background_problem, names_a_file, resolve, unreachable
from filters.contamination.rows import Located, RowText, longest
from filters.contamination.semantic import SemanticOptions, candidates, default_window, item_text, item_views, judge_request, parse_verdict, windows
from filters.embeddings import model_problem
from pipeline import hub
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, row_texts, set_column
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig
from stages.llm_support import endpoint_failures_stop_run, llm_problems, resolve_llm

SPAN = pa.struct([("field", pa.string()), ("message", pa.int64()), ("start", pa.int64()), ("end", pa.int64())])
HIT = pa.struct([
    ("benchmark", pa.string()),
    ("item_id", pa.string()),
    ("matched", pa.int64()),
    ("coverage", pa.float64()),
    ("field", pa.string()),
    ("spans", pa.list_(SPAN)),
    ("method", pa.string()),  # ngram or semantic
    ("cosine", pa.float64()),  # semantic: the item's cosine to the window
    ("verdict", pa.string()),  # semantic: yes, or error when the judge could not decide
    ("reason", pa.string()),  # semantic: the judge's one-line reason, or the error
    ("judge", pa.string()),  # semantic: the model that judged
])
HITS = pa.list_(HIT)


class CustomBenchmark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="a JSONL/JSON/CSV/Parquet file (or .gz), a folder or a glob")
    fields: list[str] = Field(min_length=1, description="fields whose text is checked; dotted paths reach into objects")
    name: str | None = Field(default=None, description="name in reports; default: the file name")
    id_field: str | None = Field(default=None, description="field holding the item id; default: the row number")


class DecontaminateConfig(StageConfig):
    benchmarks: list[str | CustomBenchmark] = Field(
        min_length=1, description="registered names (humaneval, gsm8k, mmlu, ...), files, or {path, fields, name, id_field}")
    benchmarks_dir: str | None = Field(
        default=None, description="folder with local copies in the built-in layouts; default $PIPELINE_BENCHMARKS_DIR, else the Hub")
    ngram: int = Field(default=13, ge=1, le=64, description="words per n-gram")
    min_words: int = Field(default=6, ge=1, description="a question shorter than ngram but at least this long is matched whole")
    min_words_answer: int = Field(default=8, ge=1, description="the same for the other parts (choices, answers)")
    max_item_frequency: int = Field(default=10, ge=1, description="ignore n-grams found in more benchmark items than this")
    background: list[str] = Field(default_factory=list, description="ordinary-text files whose n-grams are ignored")
    min_coverage: float = Field(default=0.0, ge=0, le=1, description="ignore items with a smaller share of their n-grams found")
    view: View = Field(default="text", description="text to check: text (every text of a row, system prompts aside), instruction, response or conversation")
    action: Action = Field(default="drop", description="what to do with a contaminated row")
    window: int = Field(default=200, ge=0, description="remove_spans: characters cut on each side of a hit")
    max_cuts: int = Field(default=10, ge=0, description="remove_spans: a row needing more cuts is dropped")
    semantic: SemanticOptions | None = Field(
        default=None, description="the semantic pass for paraphrases (embeddings and an LLM judge) over rows the n-grams found clean; off when absent")

    @field_validator("benchmarks")
    @classmethod
    def _registered_or_files(cls, benchmarks: list) -> list:
        """A name that is neither registered nor a file is a typo: refused when the config loads, at its
        line, with the nearest registered name. Whether a file can be read is `check()`'s question."""
        unknown = [InitErrorDetails(type=PydanticCustomError("unknown_name", "unknown {what} '{name}' ({hint})", {
                       "what": "benchmark", "name": b, "choices": list(REGISTRY),
                       "hint": f"known: {', '.join(REGISTRY)}; or give a .jsonl/.csv/.parquet file"}), loc=(i,), input=b)
                   for i, b in enumerate(benchmarks) if isinstance(b, str) and b.lower() not in REGISTRY and not names_a_file(b)]
        if unknown:
            raise ValidationError.from_exception_data(cls.__name__, unknown)
        return benchmarks

    @model_validator(mode="after")
    def _whole_matches_fit_an_ngram(self):
        if max(self.min_words, self.min_words_answer) > self.ngram:
            raise ValueError(f"min_words and min_words_answer must not exceed ngram ({self.ngram})")
        return self

    def benchmark_entries(self) -> list[str | dict]:
        return [b.model_dump() if isinstance(b, CustomBenchmark) else b for b in self.benchmarks]

    def local_copies(self) -> str | None:
        return self.benchmarks_dir or os.environ.get("PIPELINE_BENCHMARKS_DIR")


@register
class Decontaminate(MapStage):
    """Find benchmark items (13-gram overlap) in the rows; flag, drop, or cut them out."""

    name = "decontaminate"
    Config = DecontaminateConfig
    resources = Resources(num_cpus=1, batch_size=512)
    # With the semantic pass: one worker that loads the model once and holds one judge client (whose
    # failure window then sees every request; the client keeps the server busy on its own). More
    # workers, or a GPU each, with `resources: {concurrency: N, num_gpus: 1}`.
    semantic_resources = Resources(num_cpus=1, batch_size=256, concurrency=1)

    def effective_resources(self) -> Resources:
        if self.config.resources is None and self.config.semantic is not None:
            return self.semantic_resources
        return super().effective_resources()

    def check(self) -> list[Problem]:
        """Every benchmark resolves to a file, a local copy or a Hub dataset that can be reached,
        every background corpus exists, and the semantic pass's model and judge are there; nothing is read."""
        c = self.config
        problems = [Problem(why, ("background", i)) for i, path in enumerate(c.background)
                    if (why := background_problem(path))]
        if c.semantic:
            if why := model_problem(c.semantic.model):
                problems.append(Problem(why, ("semantic", "model")))
            problems += llm_problems(self.ctx, [(c.semantic.judge, ("semantic", "judge"))])
        try:
            specs = resolve(c.benchmark_entries())
        except BenchmarkNotFound as e:
            return [Problem(str(e), ("benchmarks",)), *problems]
        for i, spec in enumerate(specs):
            why = unreachable(spec, c.local_copies(), hub.dataset_unavailable, "benchmarks_dir (or PIPELINE_BENCHMARKS_DIR)")
            if why:
                problems.append(Problem(why, ("benchmarks", i)))
        return problems

    def prepare(self) -> None:
        super().prepare()
        c = self.config
        try:
            self.index, self.sizes = build_index(
                c.benchmark_entries(), c.local_copies(), n=c.ngram, min_words=c.min_words,
                min_words_answer=c.min_words_answer, max_item_frequency=c.max_item_frequency, background=c.background)
        except BenchmarkNotFound as e:
            raise UserError(f"stage {self.ctx.stage_id}: {e}") from None
        if c.semantic:
            from filters.embeddings import Embedder

            s = c.semantic
            self.window_words = s.window_words or default_window(self.index.items)
            texts, self.item_of = item_views(self.index.items)
            self.item_vectors = Embedder(s.model, s.device, s.batch_size).encode(texts)
            self.judge_config = resolve_llm(self.ctx, s.judge)

    def setup(self) -> None:
        s = self.config.semantic
        if s:
            from filters.embeddings import Embedder
            from generators.factory import make_client

            self.embedder = Embedder(s.model, s.device, s.batch_size)
            self.judge = make_client(self.judge_config)

    def teardown(self) -> None:
        if self.config.semantic:
            self.judge.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        c = self.config
        rows = [RowText.join(texts) for texts in row_texts(batch, c.view)]
        hits = self.index.scan([r.text for r in rows], c.min_coverage)
        found = [[(_record(h, spans := row.locate(h.spans)), spans) for h in row_hits] for row, row_hits in zip(rows, hits)]
        if c.semantic:
            for r, semantic in self._semantic(rows, [r for r, row_hits in enumerate(hits) if not row_hits]).items():
                found[r] = semantic
        out = set_column(batch, "contamination", pa.array([[record for record, _ in row] for row in found], HITS))
        reasons = [_reason(row) for row in found]
        if c.action == "drop":
            return drop_rows(out, reasons)
        if c.action == "remove_spans":
            return self._remove_spans(out, [[h for h in row if h[0].get("verdict") != "error"] for row in found],
                                      [r if r == UNJUDGED else None for r in reasons])
        return out

    def _semantic(self, rows: list[RowText], todo: list[int]) -> dict[int, list[tuple[dict, list[Located]]]]:
        """The semantic pass over rows `todo` (the n-grams found them clean): their records, for the rows with
        a positive verdict or a failed judge."""
        s = self.config.semantic
        spans = [(r, span) for r in todo for span in windows(rows[r].text, self.window_words)]
        if not spans:
            return {}
        vectors = self.embedder.encode([rows[r].text[a:b] for r, (a, b) in spans])
        position = {r: k for k, r in enumerate(todo)}
        found = candidates(vectors, [position[r] for r, _ in spans], self.item_vectors, self.item_of, len(todo), s.top_k,
                           s.min_cosine, [span for _, span in spans])
        pairs = [c for row in found for c in row]
        requests = [judge_request(item_text(self.index.items[c.item]), rows[todo[c.row]].text[c.span[0]:c.span[1]], s, self.ctx.seed)
                    for c in pairs]
        with endpoint_failures_stop_run(self.ctx):
            responses = self.judge.generate(requests) if requests else []
        out: dict[int, list[tuple[dict, list[Located]]]] = {}
        for cand, response in zip(pairs, responses):
            verdict = parse_verdict(response)
            if verdict.same is False:
                continue
            row = rows[todo[cand.row]]
            spans_found = row.locate([cand.span])
            item = self.index.items[cand.item]
            record = {"benchmark": item.benchmark, "item_id": item.item_id, "matched": None, "coverage": None,
                      "field": longest(spans_found).field, "spans": [sp.as_record() for sp in spans_found], "method": "semantic",
                      "cosine": cand.cosine, "verdict": "yes" if verdict.same else "error", "reason": verdict.reason or verdict.error,
                      "judge": response.model}
            out.setdefault(todo[cand.row], []).append((record, spans_found))
        for records in out.values():
            records.sort(key=lambda h: (h[0]["verdict"] != "yes", -h[0]["cosine"]))  # hits first, then failures
        return out

    def _remove_spans(self, batch: pa.Table, found: list[list[tuple[dict, list[Located]]]],
                      reasons: list[str | None]) -> pa.Table:
        """Cut the leaks out of the texts they were found in: a document's `text`, or each message (of
        `messages`, `prompt`, `chosen` or `rejected`) that holds a span. A text left empty, or needing more
        than `max_cuts` cuts, drops its row as `too_contaminated`, uncut, so the rejects show the leak."""
        c = self.config
        columns: dict[str, list] = {}
        for r, row in enumerate(found):
            if reasons[r]:
                continue
            by_place: dict[tuple[str, int | None], list[tuple[int, int]]] = {}
            for _, spans in row:
                for s in spans:
                    by_place.setdefault((s.field, s.message), []).append((s.start, s.end))
            places = []  # (the list or message holding a text, its key there, what is left of the text)
            for (field, message), spans in by_place.items():
                if field not in columns:
                    columns[field] = batch.column(field).to_pylist()
                holder, key = (columns[field], r) if message is None else (columns[field][r][message], "content")
                places.append((holder, key, cut_spans(holder[key], spans, c.window, c.max_cuts)))
            if any(kept is None for _, _, kept in places):
                reasons[r] = "too_contaminated"
                continue
            for holder, key, kept in places:
                holder[key] = kept
        for field, values in columns.items():
            batch = set_column(batch, field, pa.array(values, batch.schema.field(field).type))
        return drop_rows(batch, reasons)

    def summarize(self, output) -> dict[str, Any]:
        counts, unjudged = _hit_counts(output)
        benchmarks = {}
        for name, size in self.sizes.items():
            rows, items, semantic = counts.get(name, (0, 0, 0))
            benchmarks[name] = {"items": size, "items_found": items, "pct_items_found": _pct(items, size), "rows_with_hits": rows}
            if self.config.semantic:
                benchmarks[name]["rows_with_semantic_hits"] = semantic
        s = self.index.stats
        extra = {"semantic": {"window_words": self.window_words, "rows_unjudged": unjudged}} if self.config.semantic else {}
        return {
            "action": self.config.action,
            **extra,
            "benchmarks": benchmarks,
            "index": {"ngram": self.config.ngram, "grams": s.grams, "ignored_common": s.ignored_common,
                      "ignored_background": s.ignored_background, "undetectable_items": s.undetectable_items,
                      "confirmed_items": s.confirmed_items},
            "plots": [{"kind": "bar", "title": "benchmark items found in the data (%)", "x": list(benchmarks),
                       "y": [b["pct_items_found"] for b in benchmarks.values()], "xlabel": "benchmark",
                       "ylabel": "% of items"}],
        }


UNJUDGED = "contamination_unjudged"


def _record(hit: Hit, spans: list[Located]) -> dict:
    """An n-gram hit as the `contamination` column holds it: its spans in the fields they lie in, and the
    field of the longest one."""
    return {**hit.as_record(), "field": longest(spans).field, "spans": [s.as_record() for s in spans], "method": "ngram"}


def _reason(row: list[tuple[dict, list[Located]]]) -> str | None:
    """A row's drop reason: the first hit's benchmark; a row whose only finds are pairs the judge could not
    decide is unjudged, not clean."""
    for record, _ in row:
        if record.get("verdict") != "error":
            return f"contaminated:{record['benchmark']}"
    return UNJUDGED if row else None


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def _partial_counts(batch: pa.Table) -> pa.Table:
    """One block's finds as a small JSON partial: per benchmark, rows with a hit, the item ids found and rows
    whose hit the semantic pass found; and rows the judge could not decide."""
    benchmarks: dict[str, list] = {}
    unjudged = 0
    for row in batch.column("contamination").to_pylist():
        found = [h for h in row or () if h["verdict"] != "error"]  # a pair the judge could not decide is no find
        unjudged += bool(row) and not found
        for bench in {h["benchmark"] for h in found}:
            counts = benchmarks.setdefault(bench, [0, set(), 0])
            counts[0] += 1
            counts[2] += any(h["benchmark"] == bench and h["method"] == "semantic" for h in found)
        for h in found:
            benchmarks[h["benchmark"]][1].add(h["item_id"])
    partial = {"benchmarks": {b: [n, sorted(ids), sem] for b, (n, ids, sem) in benchmarks.items()}, "unjudged": unjudged}
    return pa.table({"partial": [json.dumps(partial)]})


def _hit_counts(output) -> tuple[dict[str, tuple[int, int, int]], int]:
    """benchmark -> (rows with a hit, distinct items found, rows found by the semantic pass), and the rows the
    judge could not decide: one partial per block, merged here."""
    if "contamination" not in output.schema().names:
        return {}, 0
    partials = output.select_columns(["contamination"]).map_batches(_partial_counts, batch_format="pyarrow", batch_size=None)
    rows: dict[str, int] = {}
    semantic: dict[str, int] = {}
    items: dict[str, set[str]] = {}
    unjudged = 0
    for record in partials.iter_rows():
        partial = json.loads(record["partial"])
        unjudged += partial["unjudged"]
        for bench, (n, ids, sem) in partial["benchmarks"].items():
            rows[bench] = rows.get(bench, 0) + n
            semantic[bench] = semantic.get(bench, 0) + sem
            items.setdefault(bench, set()).update(ids)
    return {b: (rows[b], len(items[b]), semantic[b]) for b in rows}, unjudged
