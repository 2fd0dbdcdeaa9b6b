"""`extract`: raw HTML (WARC responses, HTML files) to main text and title.

Each page is triaged (empty, oversized, binary), decoded with its declared or detected charset
and extracted by the chosen engine in a child process that is killed when one page runs past
`timeout_s`: that is the only limit lxml's C code cannot outrun. Every page that
yields no text is dropped with the reason why and keeps whatever text it came with. Rows that
already have text and no HTML (documents from JSONL or Parquet read beside a crawl) pass
unchanged, or are dropped as `no_html` with `html_only`. The raw `html` column is removed from the
output unless `keep_html` is set, since it is typically ten times the size of the text.

With `engine: auto`, each row's `extracted_by` column names the engine whose text it carries, and
the stage's metrics (stats.json, the report) count the pages that fell back to trafilatura.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from filters.extract_auto import FALLBACK_MIN_CHARS, SLOW
from filters.extract_process import ExtractorProcess, Page
from filters.html_extract import EMPTY_EXTRACTION, MAX_HTML_BYTES, NO_HTML, content_type_of
from pipeline.records import drop_rows, set_column
from pipeline.registry import register
from pipeline.stage import MapStage, Resources, StageConfig


class ExtractConfig(StageConfig):
    engine: Literal["trafilatura", "resiliparse", "auto"] = Field(
        "trafilatura",
        description="trafilatura: most accurate (no comments, tables kept); resiliparse: much faster; "
        "auto: resiliparse with boilerplate pruning, trafilatura where its text is too short",
    )
    favor_precision: bool = Field(
        False, description="trafilatura (and auto's fallback) only: FineWeb's setting; more precision, markedly less recall"
    )
    fallback_min_chars: int = Field(
        FALLBACK_MIN_CHARS, ge=0, description="auto only: pages whose fast text is shorter go to trafilatura (0: never)"
    )
    timeout_s: float = Field(5.0, gt=0, description="time limit per page; a page over it is dropped as extract_timeout")
    max_html_bytes: int = Field(
        MAX_HTML_BYTES, gt=0, description="larger pages are dropped as html_too_large (Common Crawl truncates at 1 MiB)"
    )
    keep_html: bool = Field(False, description="keep the raw html column in the output")
    html_only: bool = Field(
        False, description="drop rows that come with text but no HTML (no_html) instead of passing them on unchanged"
    )


EXTRACTED_BY = "extracted_by"


@register
class ExtractStage(MapStage):
    """Extract the main text and title of HTML pages; drop pages with nothing to extract, by reason."""

    name = "extract"
    Config = ExtractConfig
    resources = Resources(num_cpus=1, batch_size=64)

    def setup(self) -> None:
        c = self.config
        self.extractor = ExtractorProcess(c.engine, c.timeout_s, c.favor_precision, c.fallback_min_chars, c.max_html_bytes)

    def teardown(self) -> None:
        self.extractor.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        pages = _column(batch, "html")
        urls, metas = _column(batch, "url"), _column(batch, "meta")
        texts, titles = _column(batch, "text"), [t or "" for t in _column(batch, "title")]
        engines: list[str | None] = [None] * n

        reasons: list[str | None] = [None] * n
        todo: list[int] = []
        for i, raw in enumerate(pages):
            if raw is None and texts[i] is not None:  # a document read from JSONL or Parquet: nothing to extract
                reasons[i] = NO_HTML if self.config.html_only else None
            else:
                todo.append(i)

        found = self.extractor.extract_many([Page(pages[i], urls[i], content_type_of(metas[i])) for i in todo])
        for i, outcome in zip(todo, found):
            if outcome.error:
                reasons[i] = outcome.error
            elif not outcome.text.strip():
                reasons[i] = EMPTY_EXTRACTION
            else:
                texts[i], titles[i], engines[i] = outcome.text, outcome.title, outcome.engine

        batch = set_column(batch, "text", pa.array(texts, pa.string()))
        batch = set_column(batch, "title", pa.array(titles, pa.string()))
        if self.config.engine == "auto":
            batch = set_column(batch, EXTRACTED_BY, pa.array(engines, pa.string()))
        if not self.config.keep_html and "html" in batch.column_names:
            batch = batch.drop_columns(["html"])
        return drop_rows(batch, reasons)

    def summarize(self, output) -> dict[str, Any]:
        """With `auto`: {"extracted_by": {engine: pages}, "fallback_share": share of extracted pages given
        trafilatura's text}, over the pages kept."""
        if self.config.engine != "auto":
            return {}
        counts: dict[str, int] = {}
        for row in output.map_batches(_engine_counts, batch_format="pyarrow", batch_size=None).iter_rows():
            counts[row["engine"]] = counts.get(row["engine"], 0) + row["pages"]
        extracted = sum(counts.values())
        return {"extracted_by": dict(sorted(counts.items())), "fallback_share": round(counts.get(SLOW, 0) / extracted, 4) if extracted else 0.0}


def _engine_counts(batch: pa.Table) -> pa.Table:
    """Pages per extracting engine in one block (rows that came with text, not extracted, have none)."""
    counts: dict[str, int] = {}
    if EXTRACTED_BY in batch.column_names:
        for engine in batch.column(EXTRACTED_BY).to_pylist():
            if engine:
                counts[engine] = counts.get(engine, 0) + 1
    return pa.table({"engine": pa.array(list(counts), pa.string()), "pages": pa.array(list(counts.values()), pa.int64())})


def _column(batch: pa.Table, name: str) -> list:
    """A column as a list; all None where the batch has no such column (documents have no `html`)."""
    return batch.column(name).to_pylist() if name in batch.column_names else [None] * batch.num_rows
