"""`url_filter`: drop rows whose URL is on a block list of domains (subdomains included) or URL substrings.

The lists load once per worker. The reason names the list that matched: `url_filter.domain` or
`url_filter.url_substring`. Rows without a URL are judged by their `domain` column, if any, and
otherwise kept.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from filters.urls import UrlBlocklist
from pipeline import storage
from pipeline.records import drop_rows
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, StageConfig


class UrlFilterConfig(StageConfig):
    domains: list[str] = Field([], description="blocked domains; each also blocks its subdomains")
    domain_files: list[str] = Field([], description="files of blocked domains, one per line (.gz accepted)",
                                    json_schema_extra=storage.READ_ON_EVERY_NODE)
    url_substrings: list[str] = Field([], description="a URL containing any of these (case-insensitive) is blocked")
    url_substring_files: list[str] = Field([], description="files of blocked URL substrings, one per line",
                                           json_schema_extra=storage.READ_ON_EVERY_NODE)


@register
class UrlFilter(MapStage):
    """Drop rows from blocked domains or with blocked URL substrings."""

    name = "url_filter"
    Config = UrlFilterConfig

    def check(self) -> list[Problem]:
        c = self.config
        problems = [Problem(f"block list file {why}", (key, i))
                    for key in ("domain_files", "url_substring_files")
                    for i, path in enumerate(getattr(c, key)) if (why := storage.file_problem(path))]
        if not (c.domains or c.domain_files or c.url_substrings or c.url_substring_files):
            problems.append(Problem("give at least one of domains, domain_files, url_substrings, url_substring_files"))
        return problems

    def setup(self) -> None:
        c = self.config
        self.blocklist = UrlBlocklist.load(c.domain_files, c.url_substring_files, c.domains, c.url_substrings)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        urls = batch.column("url").to_pylist() if "url" in batch.column_names else [None] * n
        hosts = batch.column("domain").to_pylist() if "domain" in batch.column_names else [None] * n
        reasons = []
        for url, host in zip(urls, hosts):
            reason = self.blocklist.reason(url, host)
            reasons.append(f"url_filter.{reason}" if reason else None)
        return drop_rows(batch, reasons)
