"""The time limit holds on a page built to be slow, and the rest of the batch is still extracted."""

import threading

from filters.extract_process import CRASH, TIMEOUT, ExtractorProcess

NORMAL = (
    "<html><head><title>Normal</title></head><body><article><p>"
    + "This is an ordinary paragraph with enough words to count as the main text of a page. " * 15
    + "</p></article></body></html>"
)


def slow_page(n_paragraphs: int = 40_000) -> str:
    """~2.5 MB of linked paragraphs: trafilatura needs several seconds on it (measured ~3.5 s per 20k)."""
    body = "".join(f"<p><a href='/x{i}'>link {i}</a> word word word word word</p>" for i in range(n_paragraphs))
    return f"<html><body>{body}</body></html>"


def test_slow_page_is_cut_off_and_the_batch_goes_on():
    extractor = ExtractorProcess("trafilatura", timeout_s=0.5)
    try:
        outcomes = extractor.extract_many([(NORMAL, "http://a.example/1"), (slow_page(), None), (NORMAL, None)])
        assert [o.error for o in outcomes] == [None, TIMEOUT, None]
        assert outcomes[0].title == "Normal" and "ordinary paragraph" in outcomes[2].text
        assert extractor.restarts == 1
        again = extractor.extract_many([(NORMAL, None)] * 3)
        assert [o.error for o in again] == [None] * 3
        assert extractor.restarts == 1
    finally:
        extractor.close()


def test_a_child_that_died_between_batches_is_replaced():
    extractor = ExtractorProcess("resiliparse", timeout_s=5)
    try:
        assert extractor.extract_many([(NORMAL, None)])[0].error is None
        extractor._proc.kill()
        extractor._proc.wait()
        outcomes = extractor.extract_many([(NORMAL, None), (NORMAL, None)])
        assert [o.error for o in outcomes] == [None, None]
        assert "ordinary paragraph" in outcomes[0].text
    finally:
        extractor.close()


def test_a_child_dying_mid_page_costs_that_page_only():
    extractor = ExtractorProcess("trafilatura", timeout_s=120)
    try:
        extractor.extract_many([(NORMAL, None)])
        threading.Timer(0.5, extractor._proc.kill).start()
        outcomes = extractor.extract_many([(slow_page(), None), (NORMAL, None)])
        assert [o.error for o in outcomes] == [CRASH, None]
        assert extractor.restarts == 1
    finally:
        extractor.close()
