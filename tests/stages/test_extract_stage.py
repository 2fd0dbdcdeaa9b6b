"""The extract stage through the engine: real pages and WARC records in, every bad page accounted for."""

import gzip
import json

import pytest

from pipeline.records import DROP_REASON, dumps_meta, stable_id


def html_row(html: bytes, url: str = "http://example.org/page", content_type: str | None = "text/html") -> dict:
    return {
        "id": stable_id(url, html),
        "html": html,
        "url": url,
        "domain": url.split("/")[2],
        "source": "test",
        "meta": dumps_meta({"content_type": content_type} if content_type else {}),
    }


ARTICLE = "<p>" + "Die Straße in München ist schön, sagt der Bürgermeister in seiner Rede vor dem Rat. " * 12 + "</p>"


@pytest.fixture(scope="module")
def eval_rows(shared_data):
    folder = shared_data / "extraction" / "trafilatura_eval"
    gold = json.loads((folder / "evaldata.json").read_text())
    rows = []
    for url, item in list(gold.items())[:8]:
        rows.append(html_row(gzip.decompress((folder / "html" / (item["file"] + ".gz")).read_bytes()), url, None))
    return rows, gold


@pytest.mark.parametrize("engine", ["trafilatura", "resiliparse", "auto"])
def test_bad_pages_are_dropped_by_reason_and_good_ones_kept(run_stage, eval_rows, engine):
    good, gold = eval_rows
    wrong_charset = f'<html><head><meta charset="utf-8"><title>Rede</title></head><body><article>{ARTICLE}</article></body></html>'
    bad = {
        "empty_html": html_row(b"", "http://bad.example/empty"),
        "html_too_large": html_row(b"<html><body>" + b"<p>padding text</p>" * 1_200_000 + b"</body></html>", "http://bad.example/big"),
        "binary_payload": html_row(b"%PDF-1.7\n" + bytes(range(256)) * 64, "http://bad.example/doc.pdf", "text/html"),
        "empty_extraction": html_row(b"<html><head><script>" + b"var a = 1;" * 3000 + b"</script></head><body><script>x()</script></body></html>", "http://bad.example/js"),
    }
    mislabelled = html_row(wrong_charset.encode("cp1252"), "http://ok.example/rede")
    kept, dropped = run_stage("extract", {"engine": engine}, good + list(bad.values()) + [mislabelled])

    assert len(kept) + len(dropped) == len(good) + len(bad) + 1
    by_url = {r["url"]: r[DROP_REASON] for r in dropped}
    for reason, row in bad.items():
        assert by_url.get(row["url"]) == reason
    assert "html" not in kept[0]
    rede = next(r for r in kept if r["url"] == mislabelled["url"])
    assert "Die Straße in München ist schön" in rede["text"] and rede["title"] == "Rede"
    assert rede["domain"] == "ok.example" and rede["id"] == mislabelled["id"]
    found = sum(s in r["text"] for r in kept if r["url"] in gold for s in gold[r["url"]]["with"])
    wanted = sum(len(gold[r["url"]]["with"]) for r in good)
    assert found > 0.75 * wanted


def test_time_limit_drops_the_slow_page_only(run_stage):
    slow = "<html><body>" + "".join(f"<p><a href='/x{i}'>link {i}</a> word word word word word</p>" for i in range(40_000)) + "</body></html>"
    fine = f"<html><body><article>{ARTICLE}</article></body></html>"
    rows = [html_row(fine.encode(), "http://a.example/1"), html_row(slow.encode(), "http://a.example/slow"), html_row(fine.encode(), "http://a.example/2")]
    kept, dropped = run_stage("extract", {"timeout_s": 0.5, "max_html_bytes": 5_000_000}, rows)
    assert [r["url"] for r in dropped] == ["http://a.example/slow"]
    assert dropped[0][DROP_REASON] == "extract_timeout"
    assert sorted(r["url"] for r in kept) == ["http://a.example/1", "http://a.example/2"]


def test_warc_responses(run_stage, shared_data):
    from warcio.archiveiterator import ArchiveIterator

    rows = []
    with open(shared_data / "warc" / "sample-0001.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                url = record.rec_headers.get_header("WARC-Target-URI")
                rows.append(html_row(record.content_stream().read(), url, record.http_headers.get_header("Content-Type")))
    kept, dropped = run_stage("extract", {"engine": "resiliparse", "keep_html": True}, rows)
    assert len(kept) + len(dropped) == len(rows)
    assert len(kept) > 0.5 * len(rows)
    assert all(r["text"].strip() and r["html"] for r in kept)
    assert {r[DROP_REASON] for r in dropped} <= {"empty_extraction", "binary_payload", "empty_html"}


# Real pages where resiliparse finds none of the article, so `auto` must give trafilatura's text.
FALLBACK_PAGES = ("rnz.de.witzel.html", "changelog.blog.zwischenbilanz.html")


def test_auto_counts_its_fallbacks_and_gives_trafilaturas_text_on_them(run_stage, eval_rows, shared_data, tmp_path):
    import ray.data

    from filters.html_extract import extract_trafilatura, triage
    from pipeline.config import build_stage

    good, gold = eval_rows
    folder = shared_data / "extraction" / "trafilatura_eval"
    fallback = []
    for url, item in gold.items():
        if item["file"] in FALLBACK_PAGES:
            fallback.append(html_row(gzip.decompress((folder / "html" / (item["file"] + ".gz")).read_bytes()), url, None))
    assert len(fallback) == len(FALLBACK_PAGES)

    kept, dropped = run_stage("extract", {"engine": "auto"}, good + fallback)

    assert not dropped
    by_url = {r["url"]: r for r in kept}
    for row in fallback:
        out = by_url[row["url"]]
        assert out["extracted_by"] == "trafilatura"
        assert out["text"] == extract_trafilatura(triage(row["html"], None, 10_000_000)[0], row["url"])[0]
        assert all(s in out["text"] for s in gold[row["url"]]["with"])
    engines = [r["extracted_by"] for r in kept]
    assert engines.count("resiliparse") >= len(good) // 2, "most pages keep the fast engine's text"

    stage = build_stage("extract", {"engine": "auto"}, index=1, output_dir=tmp_path)
    metrics = stage.summarize(ray.data.from_items(kept))
    assert metrics["extracted_by"] == {e: engines.count(e) for e in sorted(set(engines))}
    assert metrics["fallback_share"] == round(engines.count("trafilatura") / len(kept), 4)
    assert build_stage("extract", {"engine": "trafilatura"}, index=1, output_dir=tmp_path).summarize(ray.data.from_items(kept)) == {}


DOCUMENT = {"id": "doc-1", "html": None, "text": "A document read from JSONL beside the crawl.", "url": "https://d.example/1",
            "domain": "d.example", "source": "notes.jsonl", "meta": "{}"}


@pytest.mark.parametrize("html_only", [False, True])
def test_rows_with_text_and_no_html_pass_unchanged_or_are_dropped_with_their_text(run_stage, html_only):
    page = html_row(f"<html><body><article>{ARTICLE}</article></body></html>".encode(), "http://ok.example/p")
    empty = {**html_row(b"", "http://bad.example/empty"), "text": None}
    kept, dropped = run_stage("extract", {"html_only": html_only}, [{**page, "text": None}, DOCUMENT, empty])

    by_id = {r["id"]: r for r in kept + dropped}
    assert "Die Straße in München" in by_id[page["id"]]["text"]
    assert by_id["doc-1"]["text"] == DOCUMENT["text"], "a document's text survives, kept or dropped"
    assert by_id["doc-1"].get(DROP_REASON) == ("no_html" if html_only else None)
    assert by_id[empty["id"]][DROP_REASON] == "empty_html"
