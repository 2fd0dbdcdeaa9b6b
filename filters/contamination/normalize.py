"""Text normalisation for n-gram matching, compatible with lm-evaluation-harness's decontamination.

The harness's `Janitor.normalize_string` lower-cases ASCII letters and deletes `string.punctuation`,
then splits on whitespace. We do the same on every script: `str.lower()` and delete every character
that is neither a word character nor whitespace (plus `_`, which `\\w` counts as a word character
but the harness deletes). On printable ASCII the two give identical words. Punctuation is deleted,
not replaced by a space, so "don't" is one word ("dont") as in the harness.

Deleting characters never creates or removes whitespace, so the words of `normalize(text).split()`
are exactly the normalised whitespace tokens of `text` that are not empty: that is what lets the
scanner run on the fast path and map a hit back to character offsets only for the rows that hit.
"""

from __future__ import annotations

import re

_DELETE = re.compile(r"[^\w\s]|_")
_TOKEN = re.compile(r"\S+")


def normalize(text: str) -> str:
    return _DELETE.sub("", text.lower())


def words(text: str) -> list[str]:
    return normalize(text).split()


def words_with_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The normalised words of `text` and the [start, end) character span of each in `text`."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(text):
        w = normalize(m.group())
        if w:
            out.append(w)
            spans.append(m.span())
    return out, spans
