"""`decontaminate`: find benchmark items in the rows and flag them, drop the rows, or cut the leaks out.

The n-gram index over every benchmark item is built once, on the driver, in `prepare()`, and
travels to the workers with the stage. Every text of a row is read (a document's text; the messages of
an instruction; a preference's prompt, chosen and rejected), scanned as one (`filters.contamination.rows`).
Each row gets a `contamination` column: the items found in it, with the share of each item's n-grams
that matched, the character spans of the matches in the fields they lie in, and the field of the
longest. See docs/contamination.md for the method.
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
from pipeline import hub
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, row_texts, set_column
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig

SPAN = pa.struct([("field", pa.string()), ("message", pa.int64()), ("start", pa.int64()), ("end", pa.int64())])
HIT = pa.struct([
    ("benchmark", pa.string()),
    ("item_id", pa.string()),
    ("matched", pa.int64()),
    ("coverage", pa.float64()),
    ("field", pa.string()),
    ("spans", pa.list_(SPAN)),
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

    def check(self) -> list[Problem]:
        """Every benchmark resolves to a file, a local copy or a Hub dataset that can be reached,
        and every background corpus exists; nothing is read."""
        c = self.config
        problems = [Problem(why, ("background", i)) for i, path in enumerate(c.background)
                    if (why := background_problem(path))]
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

    def process_batch(self, batch: pa.Table) -> pa.Table:
        c = self.config
        rows = [RowText.join(texts) for texts in row_texts(batch, c.view)]
        hits = self.index.scan([r.text for r in rows], c.min_coverage)
        found = [[(h, row.locate(h.spans)) for h in row_hits] for row, row_hits in zip(rows, hits)]
        out = set_column(batch, "contamination", pa.array([[_record(h, spans) for h, spans in row] for row in found], HITS))
        if c.action == "drop":
            return drop_rows(out, [f"contaminated:{row[0].item.benchmark}" if row else None for row in hits])
        if c.action == "remove_spans":
            return self._remove_spans(out, found)
        return out

    def _remove_spans(self, batch: pa.Table, found: list[list[tuple[Hit, list[Located]]]]) -> pa.Table:
        """Cut the leaks out of the texts they were found in: a document's `text`, or each message (of
        `messages`, `prompt`, `chosen` or `rejected`) that holds a span. A text left empty, or needing more
        than `max_cuts` cuts, drops its row as `too_contaminated`, uncut, so the rejects show the leak."""
        c = self.config
        columns: dict[str, list] = {}
        reasons: list[str | None] = [None] * batch.num_rows
        for r, row in enumerate(found):
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
        counts = _hit_counts(output)
        benchmarks = {}
        for name, size in self.sizes.items():
            rows, items = counts.get(name, (0, 0))
            benchmarks[name] = {"items": size, "items_found": items, "pct_items_found": _pct(items, size), "rows_with_hits": rows}
        s = self.index.stats
        return {
            "action": self.config.action,
            "benchmarks": benchmarks,
            "index": {"ngram": self.config.ngram, "grams": s.grams, "ignored_common": s.ignored_common,
                      "ignored_background": s.ignored_background, "undetectable_items": s.undetectable_items,
                      "confirmed_items": s.confirmed_items},
            "plots": [{"kind": "bar", "title": "benchmark items found in the data (%)", "x": list(benchmarks),
                       "y": [b["pct_items_found"] for b in benchmarks.values()], "xlabel": "benchmark",
                       "ylabel": "% of items"}],
        }


def _record(hit: Hit, spans: list[Located]) -> dict:
    """A hit as the `contamination` column holds it: its spans in the fields they lie in, and the field of
    the longest one."""
    return {**hit.as_record(), "field": longest(spans).field, "spans": [s.as_record() for s in spans]}


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def _partial_counts(batch: pa.Table) -> pa.Table:
    """One block's hits as a small JSON partial: rows with a hit and the item ids found, per benchmark."""
    rows: dict[str, int] = {}
    items: dict[str, set[str]] = {}
    for row in batch.column("contamination").to_pylist():
        for bench in {h["benchmark"] for h in row or ()}:
            rows[bench] = rows.get(bench, 0) + 1
        for h in row or ():
            items.setdefault(h["benchmark"], set()).add(h["item_id"])
    partial = {b: [rows[b], sorted(items[b])] for b in rows}
    return pa.table({"partial": [json.dumps(partial)]})


def _hit_counts(output) -> dict[str, tuple[int, int]]:
    """benchmark -> (rows with a hit, distinct items found): one partial per block, merged here."""
    if "contamination" not in output.schema().names:
        return {}
    partials = output.select_columns(["contamination"]).map_batches(_partial_counts, batch_format="pyarrow", batch_size=None)
    rows: dict[str, int] = {}
    items: dict[str, set[str]] = {}
    for record in partials.iter_rows():
        for bench, (n, ids) in json.loads(record["partial"]).items():
            rows[bench] = rows.get(bench, 0) + n
            items.setdefault(bench, set()).update(ids)
    return {b: (rows[b], len(items[b])) for b in rows}
