"""The `auto` extraction engine: resiliparse's speed, trafilatura only where the fast text looks wrong.

resiliparse's main-content heuristic finds the article on most pages but lets boilerplate through
around it (share buttons, author boxes, footers, "related articles" lists) and, on a few pages, finds
next to nothing. Two cheap steps narrow the gap, and one expensive one is spent where it pays:

- elements whose class or id names a boilerplate block (trafilatura's own vocabulary, kept to the
  tokens that helped on the shared evaluation set) are skipped inside resiliparse's C code;
- short lines with no sentence ending are trimmed from the two edges of the text: leftovers of
  navigation and bylines before the article and of link lists after it (a line inside the text is
  kept, since that is where headings and list items of the article itself are);
- a page whose text is still short after that (under `min_chars`) is extracted again with
  trafilatura, which searches harder (and tries readability and jusText) where little was found.

Tuned on the 823 non-English pages of trafilatura's evaluation set and checked on its 167 English
pages (docs/curation.md, docs/benchmarks.md). Plain functions, no Ray: the caller bounds the time
(filters.extract_process).
"""

from __future__ import annotations

from typing import Callable

FAST = "resiliparse"
SLOW = "trafilatura"
# A line this short that does not end a sentence is boilerplate when nothing longer stands
# between it and an edge of the text (tried: 30, 60, 80, 100, 150; 80 to 150 were within 0.0015 F1).
EDGE_LINE_CHARS = 100
SENTENCE_ENDS = tuple('.!?:;"“”»«)…')
# Fall back when the trimmed fast text is shorter than this. On the tuning pages F1 rises up to 250
# characters (0.8994 at 100, 0.9020 at 200, 0.9021 at 250) and stays flat after (0.9017 to 0.9019 at
# 300 to 400), while the fallback share, the cost, keeps growing (3.3%, 4.1%, 4.6%, then 4.9% to 5.7%).
FALLBACK_MIN_CHARS = 250
BOILERPLATE_TOKENS = ("footer", "author", "related", "newsletter", "comment", "date")
# Never the page's outer elements: a token on <body> or <article> (class="single-author") would skip the article.
SKIP_SELECTORS = tuple(
    f'[{attr}*="{token}" i]:not(html):not(body):not(main):not(article)' for token in BOILERPLATE_TOKENS for attr in ("class", "id")
)


def is_edge_line(line: str) -> bool:
    """A line that may be cut when it stands at an edge: blank, or short and not ending a sentence."""
    line = line.strip()
    return not line or (len(line) < EDGE_LINE_CHARS and not line.endswith(SENTENCE_ENDS))


def trim_edges(text: str) -> str:
    """The text without its leading and trailing runs of edge lines."""
    lines = text.split("\n")
    start, end = 0, len(lines)
    while start < end and is_edge_line(lines[start]):
        start += 1
    while end > start and is_edge_line(lines[end - 1]):
        end -= 1
    return "\n".join(lines[start:end])


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
    text = trim_edges(text)
    if not needs_fallback(text, min_chars):
        return text, title, FAST
    slow_text, _ = slow(html, url)
    if slow_text.strip():
        return slow_text, title, SLOW
    return text, title, FAST
