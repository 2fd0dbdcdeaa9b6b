"""The time limit holds on a page built to be slow, and the rest of the batch is still extracted."""

import subprocess
import sys
import threading
from pathlib import Path

from filters.extract_process import CRASH, TIMEOUT, ExtractorProcess, Page
from filters.html_extract import BINARY_PAYLOAD, EMPTY_HTML, HTML_TOO_LARGE

NORMAL = (
    "<html><head><title>Normal</title></head><body><article><p>"
    + "This is an ordinary paragraph with enough words to count as the main text of a page. " * 15
    + "</p></article></body></html>"
)
ROOT = Path(__file__).resolve().parents[2]
SLOW_PAGE_LIMIT = 10_000_000  # above the slow page's size, which the default limit would reject unparsed


def slow_page(n_paragraphs: int = 40_000) -> str:
    """~2.5 MB of linked paragraphs: trafilatura needs several seconds on it (measured ~3.5 s per 20k)."""
    body = "".join(f"<p><a href='/x{i}'>link {i}</a> word word word word word</p>" for i in range(n_paragraphs))
    return f"<html><body>{body}</body></html>"


def test_slow_page_is_cut_off_and_the_batch_goes_on():
    extractor = ExtractorProcess("trafilatura", timeout_s=0.5, max_html_bytes=SLOW_PAGE_LIMIT)
    try:
        outcomes = extractor.extract_many([Page(NORMAL, "http://a.example/1"), Page(slow_page()), Page(NORMAL)])
        assert [o.error for o in outcomes] == [None, TIMEOUT, None]
        assert outcomes[0].title == "Normal" and "ordinary paragraph" in outcomes[2].text
        assert extractor.restarts == 1
        again = extractor.extract_many([Page(NORMAL)] * 3)
        assert [o.error for o in again] == [None] * 3
        assert extractor.restarts == 1
    finally:
        extractor.close()


def test_a_child_that_died_between_batches_is_replaced():
    extractor = ExtractorProcess("resiliparse", timeout_s=5)
    try:
        assert extractor.extract_many([Page(NORMAL)])[0].error is None
        extractor._proc.kill()
        extractor._proc.wait()
        outcomes = extractor.extract_many([Page(NORMAL), Page(NORMAL)])
        assert [o.error for o in outcomes] == [None, None]
        assert "ordinary paragraph" in outcomes[0].text
    finally:
        extractor.close()


def test_a_child_dying_mid_page_costs_that_page_only():
    extractor = ExtractorProcess("trafilatura", timeout_s=120, max_html_bytes=SLOW_PAGE_LIMIT)
    try:
        extractor.extract_many([Page(NORMAL)])
        threading.Timer(0.5, extractor._proc.kill).start()
        outcomes = extractor.extract_many([Page(slow_page()), Page(NORMAL)])
        assert [o.error for o in outcomes] == [CRASH, None]
        assert extractor.restarts == 1
    finally:
        extractor.close()


def test_raw_pages_are_triaged_and_decoded_in_the_child():
    """Bytes go over as read: the child decodes them by the HTTP header's charset (over the page's own
    <meta>); a page not worth extracting gets triage's reason (the empty and oversized ones without
    crossing to the child), in the batch's order."""
    latin = NORMAL.replace("ordinary", "ordinäry").replace("<head>", '<head><meta charset="utf-8">').encode("cp1252")
    extractor = ExtractorProcess("resiliparse", timeout_s=5, max_html_bytes=len(latin) + 10)
    try:
        outcomes = extractor.extract_many([
            Page(latin, None, "text/html; charset=windows-1252"),
            Page(b"%PDF-1.5\n" + bytes(range(256)) * 4),
            Page(None),
            Page(latin + b" " * 20, None, "text/html; charset=windows-1252"),
            Page(NORMAL.encode()),
        ])
        assert [o.error for o in outcomes] == [None, BINARY_PAYLOAD, EMPTY_HTML, HTML_TOO_LARGE, None]
        assert "ordinäry paragraph" in outcomes[0].text and "ordinary paragraph" in outcomes[4].text
        assert extractor.restarts == 0
    finally:
        extractor.close()


def test_the_warm_up_loads_what_the_fallbacks_load_on_their_first_page():
    """jusText's stoplists load on the first page trafilatura finds no text in; loaded inside a page's time
    limit, on a loaded machine, they made that page a timeout instead of empty_extraction."""
    probe = ("from trafilatura import external; from filters.extract_process import WARMUP_PAGES; "
             "from filters.html_extract import extractor; extract = extractor('trafilatura'); "
             "[extract(page, None) for page in WARMUP_PAGES]; print(external.JT_STOPLIST is not None)")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout == "True\n"
