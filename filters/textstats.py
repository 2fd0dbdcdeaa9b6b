"""Text statistics that heuristic rules share, computed lazily and at most once per document.

Every rule family reads the same words, lines and n-grams, so a document is split once and
each split is cached on first use; a document rejected by an early rule never pays for the
n-grams of a later one.

A *word* is a whitespace-separated token with its leading and trailing punctuation stripped;
tokens made only of punctuation ("-", "|", "...") are not words. Whitespace tokens are what
the Gopher paper counts, and stripping punctuation keeps "the," a stop word and "end." four
characters long, the way a word tokenizer (DataTrove uses NLTK's) would see them, at the speed
of `str.split`.

Both notions belong to some writing systems only, which is why a text carries its language:
Chinese, Japanese, Thai, Lao, Khmer, Burmese and Tibetan put no spaces between words (Unicode
UAX #29, "Word Boundaries"), so a whitespace token there is a phrase or a paragraph; Thai and
Lao mark no sentence ends (a space separates sentences), so line-ending punctuation says
nothing. Rules built on either notion ask `spaced` / `punctuated` whether they apply.
"""

from __future__ import annotations

import re
import string
from functools import cached_property

import numpy as np

PUNCTUATION = string.punctuation + "…«»“”„‘’‚–—•·¡¿§¶†‡°′″‹›、。，；：！？（）【】《》「」『』"
# Sentence-final marks of the scripts lid.176 covers: Latin, Greek and Cyrillic, CJK (full width),
# Devanagari and Bengali (danda), Arabic and Urdu, Armenian, Ethiopic, Burmese, Khmer, Tibetan.
SENTENCE_ENDS = (".", "!", "?", "。", "！", "？", "．", "।", "॥", "؟", "۔", "։", "።", "။", "។", "།", "‼", "⁉", "⁇", "⁈", "‽")
# What may close a sentence after its mark: English, German („…“ ‚…‘), French and Swiss («…»),
# German book (»…«) and CJK (「…」) quotes.
CLOSING_QUOTES = ('"', "'", "”", "“", "’", "‘", "»", "«", "›", "‹", "」", "』")
DEFAULT_LANGUAGE = "en"  # the language the published rules were written for, and of text nobody identified
UNSPACED_LANGUAGES = frozenset({"zh", "wuu", "yue", "ja", "th", "lo", "km", "my", "bo"})
UNPUNCTUATED_LANGUAGES = frozenset({"th", "lo"})

_HASH_BASE = np.uint64(1_000_003)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_CJK_ENDS = "。！？"
_SPACED_ENDS = re.escape("".join(c for c in SENTENCE_ENDS if c not in _CJK_ENDS) + "…")
_CLOSERS = re.escape("".join(CLOSING_QUOTES) + ")]")
# CJK full-width marks end a sentence with no space after them; the others need a space or the end.
_SENTENCE_END = re.compile(rf"[{_SPACED_ENDS}]+[{_CLOSERS}]*(?=\s|$)|[{_CJK_ENDS}]+[{_CLOSERS}]*")


def language_code(lang: str) -> str:
    """The primary subtag of a language tag, lower case: `pt-BR` and `PT` are both `pt`."""
    return lang.replace("_", "-").partition("-")[0].lower()


def spaced(lang: str) -> bool:
    """Whether the language separates words with spaces, so whitespace tokens are words."""
    return lang not in UNSPACED_LANGUAGES


def punctuated(lang: str) -> bool:
    """Whether the language ends sentences with a mark, so a line's last character says if it ends one."""
    return lang not in UNPUNCTUATED_LANGUAGES


class TextStats:
    """Lazily computed splits and counts of one text in one language (a `language_code`)."""

    def __init__(self, text: str, lang: str = DEFAULT_LANGUAGE):
        self.text = text
        self.lang = lang

    @cached_property
    def lines(self) -> list[str]:
        """Non-empty lines, stripped."""
        return [s for s in (line.strip() for line in self.text.splitlines()) if s]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Blocks separated by blank lines, stripped, empty ones dropped."""
        return [s for s in (p.strip() for p in _PARAGRAPH_BREAK.split(self.text)) if s]

    @cached_property
    def line_duplicates(self) -> tuple[float, float]:
        return duplicate_share(self.lines)

    @cached_property
    def paragraph_duplicates(self) -> tuple[float, float]:
        return duplicate_share(self.paragraphs)

    @cached_property
    def tokens(self) -> list[str]:
        """Whitespace tokens, punctuation included."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        """Tokens with surrounding punctuation stripped; pure-punctuation tokens left out."""
        return [w for w in (t.strip(PUNCTUATION) for t in self.tokens) if w]

    @cached_property
    def word_chars(self) -> int:
        return int(self.word_lengths.sum())

    @cached_property
    def word_lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))

    def ngram_hashes(self, n: int) -> np.ndarray:
        """A 64-bit hash of the word n-gram starting at each position (one per position, len(words)-n+1).

        Built from the (n-1)-gram hashes by a rolling polynomial in wrapping uint64 arithmetic, so
        all n-gram sizes cost one vectorised pass each; a collision needs two different n-grams
        with equal 64-bit hashes, which is negligible next to the thresholds' precision.
        """
        cache = self._ngram_cache
        if n not in cache:
            if n == 1:
                cache[1] = np.fromiter(map(hash, self.words), dtype=np.int64, count=len(self.words)).view(np.uint64)
            else:
                prev, ids = self.ngram_hashes(n - 1), cache[1]
                cache[n] = prev[:-1] * _HASH_BASE + ids[n - 1 :] if len(prev) > 1 else np.empty(0, np.uint64)
        return cache[n]

    @cached_property
    def _ngram_cache(self) -> dict[int, np.ndarray]:
        return {}

    def top_ngram_char_fraction(self, n: int) -> float:
        """Share of word characters covered by the most frequent n-gram (the longest if tied), if it repeats."""
        hashes = self.ngram_hashes(n)
        if not len(hashes) or not self.word_chars:
            return 0.0
        _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        most = counts.max()
        if most < 2:
            return 0.0
        starts = first[counts == most]
        ends = np.cumsum(np.concatenate(([0], self.word_lengths)))
        return int(most) * int((ends[starts + n] - ends[starts]).max()) / self.word_chars

    def duplicate_ngram_char_fraction(self, n: int) -> float:
        """Share of word characters inside repeated occurrences of any n-gram (first occurrences not counted).

        A word inside several repeated n-grams counts once, so the fraction never exceeds 1.
        """
        hashes = self.ngram_hashes(n)
        if not len(hashes) or not self.word_chars:
            return 0.0
        repeated = np.ones(len(hashes), dtype=bool)
        repeated[np.unique(hashes, return_index=True)[1]] = False
        starts = np.flatnonzero(repeated)
        if not len(starts):
            return 0.0
        depth = np.zeros(len(self.words) + 1, dtype=np.int64)
        depth[starts] += 1
        depth[starts + n] -= 1
        covered = np.cumsum(depth[:-1]) > 0
        return int(self.word_lengths[covered].sum()) / self.word_chars


def duplicate_share(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of their characters among all items')."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    total_chars = sum(map(len, items))
    return dup_items / len(items), (dup_chars / total_chars if total_chars else 0.0)


def count_sentences(text: str) -> int:
    """Sentences as runs of terminal punctuation followed by a space or the end (a tokenizer-free count).

    A closing quote may follow the mark (`„Ja.“ Dann`); CJK full-width marks need no space after them.
    """
    n = len(_SENTENCE_END.findall(text))
    return n if n or not text.strip() else 1
