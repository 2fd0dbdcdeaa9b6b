"""The Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", MassiveText, sec. A.1.1).

Thresholds default to the paper's values (Table A1 for repetition). Words are as defined in
`filters.textstats`. The paper filtered English; a rule built on whitespace words (counts,
lengths, n-grams) is skipped for languages written without spaces, and the stop-word rule
uses the text's language's own list (`filters.stopwords`), skipped for a language without one.
Two choices where the paper is silent:
- bullet and ellipsis line ratios count non-empty lines only, so blank lines do not dilute them;
- a "top n-gram" only counts when it occurs at least twice: a short text whose most frequent
  bigram occurs once is not repetitive (for documents of 50+ words this changes nothing,
  for short instructions it avoids dropping every one of them).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from pydantic import Field, field_validator

from filters.rules import Rule, RuleFamily, Thresholds, at_least, at_most, between, ratio
from filters.stopwords import STOP_WORDS
from filters.textstats import TextStats, language_code, spaced
BULLETS = ("•", "-", "*", "‣", "◦", "▪", "●", "·")
ELLIPSES = ("...", "…")
_has_letter = re.compile(r"[^\W\d_]").search


class GopherQualityConfig(Thresholds):
    min_words: int = Field(50, description="fewest words a document may have")
    max_words: int = Field(100_000, description="most words a document may have")
    min_mean_word_length: float = Field(3, description="shortest mean word length, in characters")
    max_mean_word_length: float = Field(10, description="longest mean word length, in characters")
    max_symbol_word_ratio: float = Field(0.1, description="most '#' or ellipses per word (each counted separately)")
    max_bullet_lines: float = Field(0.9, description="largest fraction of lines starting with a bullet")
    max_ellipsis_lines: float = Field(0.3, description="largest fraction of lines ending with an ellipsis")
    min_alpha_words: float = Field(0.8, description="smallest fraction of tokens containing a letter")
    min_stop_words: int = Field(2, description="fewest distinct stop words the document must contain")
    stop_words: dict[str, tuple[str, ...]] = Field(
        STOP_WORDS,
        description="stop words per language code, added to or replacing the built-in lists "
        "(en: Gopher's eight, 29 more from FineWeb-2); an empty list skips the rule for that language",
    )

    @field_validator("stop_words", mode="before")
    @classmethod
    def _over_built_in_lists(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("give stop words per language, e.g. {en: [the, of, and], de: [der, und, die]}")
        return {**STOP_WORDS, **{language_code(str(lang)): words for lang, words in value.items()}}


class GopherQuality(RuleFamily):
    name = "gopher_quality"
    Config = GopherQualityConfig
    def rules(self) -> list[Rule]:
        c = self.config
        stop_words = {lang: frozenset(w.lower() for w in words) for lang, words in c.stop_words.items() if words}
        return [
            Rule("word_count", lambda s: len(s.words), between(c.min_words, c.max_words), spaced),
            Rule(
                "mean_word_length",
                lambda s: ratio(s.word_chars, len(s.words)),
                between(c.min_mean_word_length, c.max_mean_word_length),
                spaced,
            ),
            Rule("symbol_word_ratio", symbol_word_ratio, at_most(c.max_symbol_word_ratio), spaced),
            Rule(
                "bullet_lines",
                lambda s: ratio(sum(line.startswith(BULLETS) for line in s.lines), len(s.lines)),
                at_most(c.max_bullet_lines),
            ),
            Rule(
                "ellipsis_lines",
                lambda s: ratio(sum(line.endswith(ELLIPSES) for line in s.lines), len(s.lines)),
                at_most(c.max_ellipsis_lines),
            ),
            Rule(
                "alpha_words",
                lambda s: ratio(sum(map(bool, map(_has_letter, s.tokens))), len(s.tokens)),
                at_least(c.min_alpha_words),
                spaced,
            ),
            Rule(
                "stop_words",
                lambda s: len(stop_words[s.lang].intersection(w.lower() for w in s.words)),
                at_least(c.min_stop_words),
                stop_words.__contains__,
            ),
        ]


def symbol_word_ratio(s: TextStats) -> float:
    hashes = s.text.count("#")
    ellipses = s.text.count("...") + s.text.count("…")
    return ratio(max(hashes, ellipses), len(s.words))


class GopherRepetitionConfig(Thresholds):
    max_dup_paragraphs: float = Field(0.3, description="largest fraction of paragraphs that repeat an earlier one")
    max_dup_paragraph_chars: float = Field(0.2, description="largest character share of repeated paragraphs")
    max_dup_lines: float = Field(0.3, description="largest fraction of lines that repeat an earlier one")
    max_dup_line_chars: float = Field(0.2, description="largest character share of repeated lines")
    max_top_ngram_chars: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> largest character share of the most frequent (repeated) word n-gram",
    )
    max_dup_ngram_chars: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> largest character share of words inside repeated word n-grams",
    )


class GopherRepetition(RuleFamily):
    name = "gopher_repetition"
    Config = GopherRepetitionConfig
    def rules(self) -> list[Rule]:
        c = self.config
        return [
            Rule("dup_paragraphs", lambda s: s.paragraph_duplicates[0], at_most(c.max_dup_paragraphs)),
            Rule("dup_paragraph_chars", lambda s: s.paragraph_duplicates[1], at_most(c.max_dup_paragraph_chars)),
            Rule("dup_lines", lambda s: s.line_duplicates[0], at_most(c.max_dup_lines)),
            Rule("dup_line_chars", lambda s: s.line_duplicates[1], at_most(c.max_dup_line_chars)),
            *(
                Rule(f"top_{n}gram", lambda s, n=n: s.top_ngram_char_fraction(n), at_most(limit), spaced)
                for n, limit in sorted(c.max_top_ngram_chars.items())
            ),
            *(
                Rule(f"dup_{n}gram", lambda s, n=n: s.duplicate_ngram_char_fraction(n), at_most(limit), spaced)
                for n, limit in sorted(c.max_dup_ngram_chars.items())
            ),
        ]
