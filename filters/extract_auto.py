"""The `auto` extraction engine: resiliparse's speed, trafilatura only where the fast text looks wrong.

resiliparse's main-content heuristic finds the article on most pages but lets boilerplate through
around it (share buttons, author boxes, footers, "related articles" lists) and, on a few pages, finds
next to nothing. Two cheap steps narrow the gap, and one expensive one is spent where it pays:

- elements whose class or id names a boilerplate block (trafilatura's own vocabulary, kept to the
  tokens that helped on the shared evaluation set) are skipped inside resiliparse's C code;
- the runs of boilerplate lines at the two edges of the text are cut, as a model of a line's shape
  and neighbourhood judges them (filters.boilerplate_lines): leftovers of navigation and bylines
  before the article, of share lines, teasers and footers after it (a line inside the text is kept,
  since that is where headings and list items of the article itself are);
- a page whose text is still short after that (under `min_chars`) is extracted again with
  trafilatura, which searches harder (and tries readability and jusText) where little was found.

The skip selectors and the fallback threshold were tuned on the 823 non-English pages of
trafilatura's evaluation set and checked on its 167 English pages, the line model fitted on all 990
with cross-validation; all of it was measured on an article benchmark nothing was tuned on
(docs/curation.md, docs/benchmarks.md). Plain functions, no Ray: the caller bounds the time
(filters.extract_process).
"""

from __future__ import annotations

from typing import Callable

from filters.boilerplate_lines import trim_boilerplate

FAST = "resiliparse"
SLOW = "trafilatura"
# Fall back when the trimmed fast text is shorter than this. On the tuning pages F1 rises fast up to
# 100 characters (0.8991 with no fallback, 0.9098 at 100), then slowly (0.9122 at 150, 0.9137 at 250,
# 0.9146 at 400) while the fallback share, the cost, keeps growing (2.7%, 3.4%, 3.9%, 5.2%).
FALLBACK_MIN_CHARS = 250
BOILERPLATE_TOKENS = ("footer", "author", "related", "newsletter", "comment", "date")
# Never the page's outer elements: a token on <body> or <article> (class="single-author") would skip the article.
SKIP_SELECTORS = tuple(
    f'[{attr}*="{token}" i]:not(html):not(body):not(main):not(article)' for token in BOILERPLATE_TOKENS for attr in ("class", "id")
)


def needs_fallback(fast_text: str, min_chars: int = FALLBACK_MIN_CHARS) -> bool:
    """Whether the fast engine's (trimmed) text is too short to trust as the page's main text."""
    return len(fast_text) < min_chars


def extract_auto(
    html: str,
    url: str | None,
    fast: Callable[..., tuple[str, str]],
    slow: Callable[[str, str | None], tuple[str, str]],
    min_chars: int = FALLBACK_MIN_CHARS,
) -> tuple[str, str, str]:
    """(text, title, engine that gave the text). `fast` is resiliparse's extractor, called with
    `skip_elements`; `slow` is trafilatura's. When trafilatura finds nothing either, the fast text
    is better than none and is kept."""
    text, title = fast(html, url, skip_elements=SKIP_SELECTORS)
    text = trim_boilerplate(text)
    if not needs_fallback(text, min_chars):
        return text, title, FAST
    slow_text, _ = slow(html, url)
    if slow_text.strip():
        return slow_text, title, SLOW
    return text, title, FAST
