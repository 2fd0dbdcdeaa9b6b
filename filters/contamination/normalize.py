"""Text normalisation for n-gram matching, compatible with lm-evaluation-harness's decontamination.

The harness's `Janitor.normalize_string` lower-cases ASCII letters and deletes `string.punctuation`,
then splits on whitespace. We do the same on every script: `str.lower()` and delete every character
that is neither a word character nor whitespace (plus `_`, which `\\w` counts as a word character
but the harness deletes). On printable ASCII without markup the two give identical words.
Punctuation is deleted, not replaced by a space, so "don't" is one word ("dont") as in the harness.

Training text wraps items in markup that the benchmark does not have, and the plain rule would glue
it to the words (`<li>Lipids</li>` -> `lilipidsli`, `Janet&#39;s` -> `janet39s`, a JSON line's
`eggs.\\nShe` -> `eggsnshe`). So, before the words are taken, *separators* become whitespace: HTML
tags, `&nbsp;`, GSM8K's calculator notes (`<<48/2=24>>`, which copies of its answers often leave out)
and the escapes `\\n`, `\\r`, `\\t`; other HTML entities are deleted like punctuation; and a word
hyphenated across a line break (`com-` newline `pute`) is joined. Benchmark items go through the same
rule, so a verbatim copy still matches itself.

Separators are replaced by as many spaces as they have characters, and deletions happen inside a
whitespace token, so every word keeps the character offsets of the text it came from; a word joined
across a line break spans both pieces. That is what lets the scanner run on the fast path and map a
hit back to character offsets only for the rows that hit.

`arrow_words` is the same rule in Arrow's vectorised string kernels (RE2 and utf8proc), about twice as
fast on a batch. Where the two could differ we make them agree: final sigma is folded to sigma (Python
lower-cases by context, utf8proc does not), the control characters Python counts as whitespace are
turned into spaces, and the whitespace classes of the separators and of the line-break join are RE2's.
Arrow lower-cases before it looks for separators, Python looks for them case-insensitively in ASCII:
a non-ASCII letter that lower-cases to an ASCII one (the Kelvin sign) inside a tag name is the one
place they part. Tests compare both on real web text, random Unicode and random markup; the scanner
still checks every row that hits and falls back to the Python rule if a count ever disagrees.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ENTITY = r"&(?:[a-z]{2,8}[0-9]?|#[0-9]{1,7}|#x[0-9a-f]{1,6});"
_TAGS = ("a|abbr|article|aside|b|big|blockquote|body|br|button|caption|center|cite|code|col|dd|del|div|dl|dt|em|"
         "figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|img|input|ins|kbd|label|li|main|mark|nav|ol|"
         "option|p|pre|q|s|samp|section|select|small|span|strike|strong|sub|sup|table|tbody|td|textarea|tfoot|th|"
         "thead|title|tr|tt|u|ul|var")
_DELETE = re.compile(_ENTITY + r"|[^\w\s]|_")
_TOKEN = re.compile(r"\S+")
_PY_GAP = r"\t\f\r \x1c-\x1f\x85"  # RE2's \s but the newline, plus what _RE2_SPACE turns into spaces first
_PY_SPACE = _PY_GAP + r"\n"


def _separator(space: str) -> str:
    return (rf"&(?:nbsp|#160|#xa0);|<<[^<>]{{0,100}}>>|</?(?:{_TAGS})(?:[{space}][^<>]{{0,200}})?/?>|\\[nrt]")


_SEPARATE = re.compile(_separator(_PY_SPACE), re.IGNORECASE | re.ASCII)  # Arrow lower-cases first, then matches
_HYPHEN_GAP = re.compile(rf"[{_PY_GAP}]*\n[{_PY_SPACE}]*")
_RE2_SPACE = r"[\x{1c}-\x{1f}\x{85}]"
_RE2_SEPARATOR = _separator(r"\t\n\f\r ")
_RE2_HYPHEN = r"-[\t\f\r ]*\n[\t\n\f\r ]*"
_RE2_DELETE = _ENTITY + r"|[^\p{L}\p{N}\s\p{Z}\x{0b}]|_"


def normalize(text: str) -> str:
    """One whitespace token's normalised form (separators are the caller's: see `words_with_offsets`)."""
    return _DELETE.sub("", text.lower()).replace("ς", "σ")


def arrow_words(texts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """The normalised words of all texts, flattened, and the number of words of each text."""
    low = pc.utf8_lower(pa.array(texts, pa.large_string()))
    low = pc.replace_substring_regex(pc.replace_substring_regex(low, _RE2_SPACE, " "), _RE2_SEPARATOR, " ")
    low = pc.replace_substring(pc.replace_substring_regex(low, _RE2_HYPHEN, ""), "ς", "σ")
    split = pc.utf8_split_whitespace(pc.replace_substring_regex(low, _RE2_DELETE, ""))
    flat = pc.list_flatten(split)
    nonempty = pc.not_equal(pc.utf8_length(flat), 0)
    parents = pc.list_parent_indices(split).to_numpy(zero_copy_only=False)[nonempty.to_numpy(zero_copy_only=False)]
    return flat.filter(nonempty), np.bincount(parents, minlength=len(texts)).astype(np.int64)


def words(text: str) -> list[str]:
    return words_with_offsets(text)[0]


def words_with_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The normalised words of `text` and the [start, end) character span of each in `text`."""
    blank = _SEPARATE.sub(lambda m: " " * len(m.group()), text)
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    joined, start = "", None  # a word hyphenated across line breaks: its raw pieces so far, without the hyphens
    for m in _TOKEN.finditer(blank):
        piece = m.group()
        start = m.start() if start is None else start
        if piece.endswith("-") and _HYPHEN_GAP.fullmatch(blank, m.end(), _next_token(blank, m.end())):
            joined += piece[:-1]
            continue
        w = normalize(joined + piece)
        if w:
            out.append(w)
            spans.append((start, m.end()))
        joined, start = "", None
    return out, spans


def _next_token(text: str, at: int) -> int:
    """Where the next non-whitespace character after `at` is (or the end): the gap is text[at:that]."""
    m = _TOKEN.search(text, at)
    return m.start() if m else at
