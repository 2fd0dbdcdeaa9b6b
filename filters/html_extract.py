"""Main-text extraction from decoded HTML with two engines.

- `trafilatura` (default): the most accurate open extractor in published comparisons and the
  one FineWeb uses. Run with settings that favour precision, as large web corpora do:
  boilerplate that leaks into every page of a corpus costs more than a lost marginal line.
  Reader comments are excluded (they are not the page's text, and the main source of leaked
  boilerplate); tables are kept (much of the content of reference pages). `favor_precision`
  (FineWeb's choice) goes further at a real cost in recall: on trafilatura's own evaluation
  set it buys 1.8 points of snippet precision for 2.5 points of recall (docs/benchmarks.md),
  so it is an option, not the default.
- `resiliparse`: a C++ DOM and main-content heuristic, about 10x the pages per CPU-second of
  trafilatura, for throughput-bound runs; it lets more boilerplate through.
- `auto`: resiliparse with boilerplate pruning, and trafilatura on the pages where the fast text
  looks wrong (filters/extract_auto.py).

Both engines take the page title from resiliparse's DOM, so `title` means the same thing
whichever engine is used. These functions can run for a long time on hostile pages; the
caller bounds them (filters.extract_process runs them in a killable child process).
"""

from __future__ import annotations

import functools
import json
from typing import Callable

from filters.charset import decode_html, is_binary
from filters.extract_auto import FALLBACK_MIN_CHARS, extract_auto

ENGINES = ("trafilatura", "resiliparse", "auto")

EMPTY_HTML = "empty_html"
NO_HTML = "no_html"
HTML_TOO_LARGE = "html_too_large"
BINARY_PAYLOAD = "binary_payload"
EMPTY_EXTRACTION = "empty_extraction"
MAX_HTML_BYTES = 2_000_000  # Common Crawl truncates records at 1 MiB; a larger page is rarely one worth its parse

TRAFILATURA_SETTINGS = {
    "favor_precision": False,
    "include_comments": False,
    "include_tables": True,
    "deduplicate": False,
}
# trafilatura compares its main extraction with its fallbacks (readability, jusText) when the
# text found is shorter than this many characters (its default: 250). With comments excluded,
# 300 recovers the recall that comments gave on trafilatura's evaluation set and keeps the
# precision gain; 250, 500 and 600 do not (the sweep in docs/benchmarks-history.md, under "Extraction on
# trafilatura's evaluation set").
MIN_EXTRACTED_SIZE = 300
RESILIPARSE_SETTINGS = {
    "main_content": True,
    "preserve_formatting": True,
    "list_bullets": True,
    "alt_texts": False,
    "links": False,
    "form_fields": False,
    "noscript": False,
    "comments": False,
}


def content_type_of(meta: str | None) -> str | None:
    """The HTTP Content-Type a reader kept in a row's `meta` (WARC responses), if any."""
    try:
        return json.loads(meta).get("content_type") if meta else None
    except (ValueError, AttributeError):
        return None


def screen(raw: bytes | str | None, max_bytes: int) -> str | None:
    """The reason a page is not worth even looking into (empty, too large), else None: a length check,
    done before a page is copied anywhere."""
    if not raw:
        return EMPTY_HTML
    if len(raw) > max_bytes:
        return HTML_TOO_LARGE
    return None


def triage(raw: bytes | str | None, content_type: str | None, max_bytes: int) -> tuple[str | None, str | None]:
    """(decoded html, None) for a page worth extracting, else (None, reason).

    Cheap checks first, so a 20 MB page or a PDF never reaches the parser.
    """
    if reason := screen(raw, max_bytes):
        return None, reason
    if isinstance(raw, str):
        return raw, None
    if is_binary(raw, content_type):
        return None, BINARY_PAYLOAD
    return decode_html(raw, content_type)[0], None


def _title(tree) -> str:
    return (tree.title or "").strip()


def extract_trafilatura(html: str, url: str | None = None, favor_precision: bool = False) -> tuple[str, str]:
    """(text, title) with our trafilatura settings."""
    import trafilatura
    from resiliparse.parse.html import HTMLTree

    settings = {**TRAFILATURA_SETTINGS, "favor_precision": favor_precision}
    text = trafilatura.extract(html, url=url or None, config=_trafilatura_config(), **settings) or ""
    return text, _title(HTMLTree.parse(html))


@functools.cache
def _trafilatura_config():
    from copy import deepcopy

    from trafilatura.settings import DEFAULT_CONFIG

    config = deepcopy(DEFAULT_CONFIG)
    config["DEFAULT"]["min_extracted_size"] = str(MIN_EXTRACTED_SIZE)
    return config


def extract_resiliparse(html: str, url: str | None = None, skip_elements: tuple[str, ...] = ()) -> tuple[str, str]:
    """(text, title) with resiliparse's main-content extraction; `skip_elements`: CSS selectors of
    elements left out."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    text = extract_plain_text(tree, **RESILIPARSE_SETTINGS, skip_elements=list(skip_elements) or None)
    return text.strip(), _title(tree)


def extractor(
    engine: str, favor_precision: bool = False, fallback_min_chars: int = FALLBACK_MIN_CHARS
) -> Callable[[str, str | None], tuple[str, str, str]]:
    """The (html, url) -> (text, title, engine that gave the text) function of an engine.

    `favor_precision` is trafilatura's (also as `auto`'s fallback); `fallback_min_chars` is `auto`'s.
    """
    slow = functools.partial(extract_trafilatura, favor_precision=favor_precision)
    if engine == "trafilatura":
        return lambda html, url: (*slow(html, url), engine)
    if engine == "resiliparse":
        return lambda html, url: (*extract_resiliparse(html, url), engine)
    if engine == "auto":
        return functools.partial(extract_auto, fast=extract_resiliparse, slow=slow, min_chars=fallback_min_chars)
    raise ValueError(f"unknown extraction engine '{engine}' (known: {', '.join(ENGINES)})")
