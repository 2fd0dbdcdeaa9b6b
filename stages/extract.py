"""`extract`: raw HTML (WARC responses, HTML files) to main text and title.

Each page is triaged first (empty, oversized, binary), decoded with its declared or detected
charset, then extracted by the chosen engine in a child process that is killed when one page
runs past `timeout_s`: that is the only limit lxml's C code cannot outrun. Every page that
yields no text is dropped with the reason why. The raw `html` column is removed from the
output unless `keep_html` is set, since it is typically ten times the size of the text.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import Field

from filters.html_extract import EMPTY_EXTRACTION, content_type_of, triage
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


@register
class ExtractStage(MapStage):
    """Extract the main text and title of HTML pages; drop pages with nothing to extract, by reason."""

    name = "extract"
    Config = ExtractConfig
    resources = Resources(num_cpus=1, batch_size=64)

    def setup(self) -> None:
        from filters.extract_process import ExtractorProcess

        self.extractor = ExtractorProcess(self.config.engine, self.config.timeout_s, self.config.favor_precision)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        if "html" not in batch.column_names:
            return drop_rows(batch, ["missing_html"] * n)
        pages = batch.column("html").to_pylist()
        urls = batch.column("url").to_pylist() if "url" in batch.column_names else [None] * n
        metas = batch.column("meta").to_pylist() if "meta" in batch.column_names else [None] * n

        reasons: list[str | None] = [None] * n
        todo: list[int] = []
        htmls: list[tuple[str, str | None]] = []
        for i, (raw, meta) in enumerate(zip(pages, metas)):
            html, reasons[i] = triage(raw, content_type_of(meta), self.config.max_html_bytes)
            if html is not None:
                todo.append(i)
                htmls.append((html, urls[i]))

        texts, titles = [""] * n, [""] * n
        for i, outcome in zip(todo, self.extractor.extract_many(htmls)):
            if outcome.error:
                reasons[i] = outcome.error
            elif not outcome.text.strip():
                reasons[i] = EMPTY_EXTRACTION
            else:
                texts[i], titles[i] = outcome.text, outcome.title

        batch = set_column(batch, "text", pa.array(texts, pa.string()))
        batch = set_column(batch, "title", pa.array(titles, pa.string()))
        if not self.config.keep_html:
            batch = batch.drop_columns(["html"])
        return drop_rows(batch, reasons)
