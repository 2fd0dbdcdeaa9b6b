"""Extraction on real pages (trafilatura's evaluation corpus, real WARC files) and the page triage."""

import gzip
import json

import pytest

from filters.html_extract import (
    BINARY_PAYLOAD,
    EMPTY_HTML,
    HTML_TOO_LARGE,
    content_type_of,
    extract_resiliparse,
    extract_trafilatura,
    triage,
)

N_PAGES = 25


@pytest.fixture(scope="module")
def eval_pages(shared_data):
    folder = shared_data / "extraction" / "trafilatura_eval"
    gold = json.loads((folder / "evaldata.json").read_text())
    pages = []
    for url, item in list(gold.items())[:N_PAGES]:
        raw = gzip.decompress((folder / "html" / (item["file"] + ".gz")).read_bytes())
        html, reason = triage(raw, None, 10_000_000)
        assert reason is None
        pages.append((url, html, item["with"], item["without"]))
    return pages


@pytest.fixture(scope="module")
def extracted(eval_pages):
    """engine -> [(text, title, with snippets, without snippets)] over the evaluation pages."""
    return {
        name: [(*extract(html, url), with_, without) for url, html, with_, without in eval_pages]
        for name, extract in (("trafilatura", extract_trafilatura), ("resiliparse", extract_resiliparse))
    }


@pytest.mark.parametrize("engine", ["trafilatura", "resiliparse"])
def test_engines_find_main_text_and_skip_boilerplate(extracted, engine):
    results = extracted[engine]
    found = sum(sum(s in text for s in with_) for text, _, with_, _ in results)
    wanted = sum(len(with_) for _, _, with_, _ in results)
    leaked = sum(sum(s in text for s in without) for text, _, _, without in results)
    boilerplate = sum(len(without) for _, _, _, without in results)
    assert found / wanted > 0.8
    assert leaked / boilerplate < 0.35


def test_trafilatura_engine_leaks_less_boilerplate_than_resiliparse(extracted):
    def leaked(engine):
        return sum(sum(s in text for s in without) for text, _, _, without in extracted[engine])

    assert leaked("trafilatura") < leaked("resiliparse")


@pytest.mark.parametrize("engine", ["trafilatura", "resiliparse"])
def test_titles_come_from_the_page(extracted, engine):
    titles = [title for _, title, _, _ in extracted[engine]]
    assert sum(bool(t) for t in titles) > 0.8 * len(titles)
    assert all("<" not in t for t in titles)


def test_warc_responses_extract(shared_data):
    from warcio.archiveiterator import ArchiveIterator

    extracted = responses = 0
    with open(shared_data / "warc" / "sample-0000.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type != "response":
                continue
            content_type = record.http_headers.get_header("Content-Type")
            html, reason = triage(record.content_stream().read(), content_type, 2_000_000)
            if reason is None and "html" in (content_type or ""):
                responses += 1
                extracted += bool(extract_trafilatura(html, record.rec_headers.get_header("WARC-Target-URI"))[0].strip())
    assert responses > 0
    assert extracted > 0.7 * responses


def test_triage_reasons():
    page = b"<html><body><p>hello</p></body></html>"
    assert triage(b"", None, 100) == (None, EMPTY_HTML)
    assert triage(None, None, 100) == (None, EMPTY_HTML)
    assert triage(page * 10, None, 100) == (None, HTML_TOO_LARGE)
    assert triage(b"%PDF-1.5\n" + bytes(range(256)), None, 10_000)[1] == BINARY_PAYLOAD
    assert triage(page, "application/octet-stream", 10_000)[1] == BINARY_PAYLOAD
    assert triage(page, "text/html", 10_000) == (page.decode(), None)
    assert triage(page.decode(), None, 10_000) == (page.decode(), None)


def test_content_type_from_meta():
    assert content_type_of(json.dumps({"content_type": "text/html; charset=koi8-r"})) == "text/html; charset=koi8-r"
    assert content_type_of(json.dumps({"path": "x"})) is None
    assert content_type_of(None) is None
    assert content_type_of("not json") is None
    assert content_type_of("[1, 2]") is None


def test_all_script_page_has_no_text():
    page = "<html><head><script>" + "var x = 1;\n" * 5000 + "</script></head><body><script>run()</script></body></html>"
    assert extract_trafilatura(page)[0].strip() == ""
    assert extract_resiliparse(page)[0].strip() == ""
