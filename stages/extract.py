"""`extract`: raw HTML (WARC responses, HTML files) to main text and title.

Each page is triaged first (empty, oversized, binary), decoded with its declared or detected
charset, then extracted by the chosen engine in a child process that is killed when one page
runs past `timeout_s`: that is the only limit lxml's C code cannot outrun. Every page that
yields no text is dropped with the reason why and keeps whatever text it came with. Rows that
already have text and no HTML (documents from JSONL or Parquet read beside a crawl) pass
unchanged, or are dropped as `no_html` with `html_only`. The raw `html` column is removed from the
output unless `keep_html` is set, since it is typically ten times the size of the text.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import Field

from filters.html_extract import EMPTY_EXTRACTION, NO_HTML, content_type_of, triage
from pipeline.records import drop_rows, set_column
from pipeline.registry import register
from pipeline.stage import MapStage, Resources, StageConfig


class ExtractConfig(StageConfig):
    engine: Literal["trafilatura", "resiliparse"] = Field(
        "trafilatura", description="trafilatura: most accurate (no comments, tables kept); resiliparse: much faster"
    )
    favor_precision: bool = Field(
        False, description="trafilatura only: FineWeb's setting; more precision, markedly less recall"
    )
    timeout_s: float = Field(5.0, gt=0, description="time limit per page; a page over it is dropped as extract_timeout")
    max_html_bytes: int = Field(
        2_000_000, gt=0, description="larger pages are dropped as html_too_large (Common Crawl truncates at 1 MiB)"
    )
    keep_html: bool = Field(False, description="keep the raw html column in the output")
    html_only: bool = Field(
        False, description="drop rows that come with text but no HTML (no_html) instead of passing them on unchanged"
    )


@register
class ExtractStage(MapStage):
    """Extract the main text and title of HTML pages; drop pages with nothing to extract, by reason."""

    name = "extract"
    Config = ExtractConfig
    resources = Resources(num_cpus=1, batch_size=64)

    def setup(self) -> None:
        from filters.extract_process import ExtractorProcess

        self.extractor = ExtractorProcess(self.config.engine, self.config.timeout_s, self.config.favor_precision)

    def teardown(self) -> None:
        self.extractor.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        pages = _column(batch, "html")
        urls, metas = _column(batch, "url"), _column(batch, "meta")
        texts, titles = _column(batch, "text"), [t or "" for t in _column(batch, "title")]

        reasons: list[str | None] = [None] * n
        todo: list[int] = []
        htmls: list[tuple[str, str | None]] = []
        for i, (raw, meta) in enumerate(zip(pages, metas)):
            if raw is None and texts[i] is not None:  # a document read from JSONL or Parquet: nothing to extract
                reasons[i] = NO_HTML if self.config.html_only else None
                continue
            html, reasons[i] = triage(raw, content_type_of(meta), self.config.max_html_bytes)
            if html is not None:
                todo.append(i)
                htmls.append((html, urls[i]))

        for i, outcome in zip(todo, self.extractor.extract_many(htmls)):
            if outcome.error:
                reasons[i] = outcome.error
            elif not outcome.text.strip():
                reasons[i] = EMPTY_EXTRACTION
            else:
                texts[i], titles[i] = outcome.text, outcome.title

        batch = set_column(batch, "text", pa.array(texts, pa.string()))
        batch = set_column(batch, "title", pa.array(titles, pa.string()))
        if not self.config.keep_html and "html" in batch.column_names:
            batch = batch.drop_columns(["html"])
        return drop_rows(batch, reasons)


def _column(batch: pa.Table, name: str) -> list:
    """A column as a list; all None where the batch has no such column (documents have no `html`)."""
    return batch.column(name).to_pylist() if name in batch.column_names else [None] * batch.num_rows
