"""The `auto` engine's rules: what is cut from resiliparse's text, and when trafilatura is asked instead.

The fallback tests run both real engines on real pages of trafilatura's evaluation set: one where
resiliparse finds nothing of the article and one where it finds all of it and nothing else.
"""

import gzip
import json

import pytest

from filters.extract_auto import FALLBACK_MIN_CHARS, extract_auto, needs_fallback
from filters.html_extract import extract_resiliparse, extract_trafilatura, extractor, triage

SENTENCE = "Die Luft in der Stadt ist im Winter schlechter als im Sommer, sagen die Forscher der Universität."


@pytest.fixture(scope="module")
def eval_page(shared_data):
    folder = shared_data / "extraction" / "trafilatura_eval"
    gold = json.loads((folder / "evaldata.json").read_text())

    def page(file: str) -> tuple[str, str, list[str], list[str]]:
        url, item = next((u, g) for u, g in gold.items() if g["file"] == file)
        html, reason = triage(gzip.decompress((folder / "html" / (file + ".gz")).read_bytes()), None, 10_000_000)
        assert reason is None
        return html, url, item["with"], item["without"]

    return page


def test_a_page_whose_fast_text_is_too_short_falls_back_to_trafilatura(eval_page):
    html, url, with_, _ = eval_page("rnz.de.witzel.html")
    assert not any(s in extract_resiliparse(html, url)[0] for s in with_)  # resiliparse misses the article

    text, title, engine = extractor("auto")(html, url)

    assert engine == "trafilatura"
    assert text == extract_trafilatura(html, url)[0]
    assert all(s in text for s in with_)
    assert title == extract_resiliparse(html, url)[1]


def test_a_good_article_stays_with_resiliparse(eval_page):
    html, url, with_, without = eval_page("demokratiewebstatt.at.luft.html")

    text, _, engine = extractor("auto")(html, url)

    assert engine == "resiliparse"
    assert len(text) >= FALLBACK_MIN_CHARS
    assert all(s in text for s in with_) and not any(s in text for s in without)
    assert text != extract_trafilatura(html, url)[0]


def test_min_chars_zero_never_falls_back(eval_page):
    html, url, _, _ = eval_page("rnz.de.witzel.html")
    assert extractor("auto", fallback_min_chars=0)(html, url)[2] == "resiliparse"


def test_too_short_is_under_min_chars():
    assert needs_fallback("x" * (FALLBACK_MIN_CHARS - 1))
    assert not needs_fallback("x" * FALLBACK_MIN_CHARS)
    assert needs_fallback("x" * 999, min_chars=1000) and not needs_fallback("", min_chars=0)


def test_boilerplate_blocks_are_skipped_but_never_the_page_that_names_them():
    article = "".join(f"<p>{SENTENCE} Absatz {i}.</p>" for i in range(5))
    html = (
        '<html><body class="single-author"><main id="content-related"><article>'
        f"<h1>Luft</h1>{article}"
        '<div class="author-box"><p>Anna Muster schreibt seit 2010 über Umwelt und Verkehr in der Region.</p></div>'
        '<section id="related-posts"><p>Auch interessant: ein anderer Artikel über Feinstaub im Winter, lesen Sie mehr.</p></section>'
        "</article></main>"
        '<div class="site-footer"><p>Alle Rechte vorbehalten, Umweltzeitung 2024, Musterstadt und Umgebung.</p></div>'
        "</body></html>"
    )
    text, _, engine = extractor("auto")(html, None)
    assert engine == "resiliparse"
    assert text.count(SENTENCE) == 5
    assert "Anna Muster" not in text and "Auch interessant" not in text and "Alle Rechte" not in text
    assert "Anna Muster" in extract_resiliparse(html)[0]  # what the plain engine lets through


def test_when_trafilatura_finds_nothing_the_fast_text_is_kept():
    def fast(html, url, skip_elements=()):
        return "Zu kurz, aber etwas.", "T"

    def slow(html, url):
        return "  ", ""

    assert extract_auto("<html></html>", None, fast, slow) == ("Zu kurz, aber etwas.", "T", "resiliparse")



def test_a_bad_fallback_option_is_refused_at_config_load_naming_the_key(tmp_path):
    from pipeline.config import load_run
    from pipeline.errors import UserError

    config = tmp_path / "c.yaml"
    config.write_text("name: t\ninput: {format: jsonl, paths: [data.jsonl]}\noutput: out\nstages:\n"
                      "  - extract: {engine: auto, fallback_min_chars: -1}\n")
    with pytest.raises(UserError) as e:
        load_run(config)
    assert "stages[0].extract.fallback_min_chars" in str(e.value) and "\n" not in str(e.value)
