"""The url_filter stage through the engine: reasons by list type, host fallback, clear config errors."""

from __future__ import annotations

import pytest

from pipeline.config import build_stage
from pipeline.errors import UserError
from pipeline.records import DROP_REASON


def test_rows_are_dropped_by_list_type_and_accounted_for(run_stage, tmp_path):
    domain_file = tmp_path / "adult.txt"
    domain_file.write_text("# list\nexample.com\n")
    rows = [
        {"id": "1", "text": "t", "url": "https://www.example.com/a", "domain": "www.example.com"},
        {"id": "2", "text": "t", "url": "https://shop.ok.org/casino/x", "domain": "shop.ok.org"},
        {"id": "3", "text": "t", "url": "https://ok.org/news", "domain": "ok.org"},
        {"id": "4", "text": "t", "url": None, "domain": "blog.example.com"},
        {"id": "5", "text": "t", "url": None, "domain": None},
    ]
    kept, dropped = run_stage("url_filter", {"domain_files": [str(domain_file)], "url_substrings": ["/casino/"]}, rows)
    assert sorted(r["id"] for r in kept) == ["3", "5"]
    assert {r["id"]: r[DROP_REASON] for r in dropped} == {"1": "url_filter.domain", "2": "url_filter.url_substring", "4": "url_filter.domain"}


@pytest.mark.parametrize(
    "options,message",
    [({}, "at least one of"), ({"domain_files": ["/nonexistent/list.txt"]}, "not found: /nonexistent/list.txt")],
)
def test_config_problems_are_user_errors(tmp_path, options, message):
    stage = build_stage("url_filter", options, index=1, output_dir=tmp_path)
    with pytest.raises(UserError, match=message):
        stage.prepare()
