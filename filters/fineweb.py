"""FineWeb's extra rules (Penedo et al. 2024, "The FineWeb Datasets", sec. 3.3), on non-empty lines.

They target what Gopher and C4 miss in Common Crawl text: pages that are mostly navigation
(few lines end in punctuation, most lines are short), boilerplate repeated line by line, and
lists (many line breaks per word). Words per newline count whitespace tokens, punctuation
included, which is closest to the NLTK token count the published 0.3 was tuned on.

The rules are FineWeb's English ones. Line endings count the sentence marks of every script
(`filters.textstats.SENTENCE_ENDS`), except for Thai and Lao, which mark no sentence ends and
skip `punct_lines`. `newline_word_ratio` counts whitespace tokens and `short_lines` measures
characters against a threshold tuned on alphabetic text (a CJK line of 30 characters is a long
sentence), so both are skipped for languages written without spaces.
"""

from __future__ import annotations

from pydantic import Field

from filters.rules import Rule, RuleFamily, Thresholds, at_least, at_most, ratio
from filters.textstats import SENTENCE_ENDS, punctuated, spaced


class FineWebConfig(Thresholds):
    min_punct_lines: float = Field(0.12, description="smallest fraction of lines ending in terminal punctuation")
    max_short_lines: float = Field(0.67, description="largest fraction of short lines")
    short_line_length: int = Field(30, description="a line of at most this many characters is short")
    max_dup_line_chars: float = Field(0.01, description="largest character share of lines repeating an earlier one")
    max_newline_word_ratio: float = Field(0.3, description="most line breaks per word")


class FineWeb(RuleFamily):
    name = "fineweb"
    Config = FineWebConfig

    def rules(self) -> list[Rule]:
        c = self.config
        return [
            Rule(
                "punct_lines",
                lambda s: ratio(sum(line.endswith(SENTENCE_ENDS) for line in s.lines), len(s.lines)),
                at_least(c.min_punct_lines),
                punctuated,
            ),
            Rule(
                "short_lines",
                lambda s: ratio(sum(len(line) <= c.short_line_length for line in s.lines), len(s.lines)),
                at_most(c.max_short_lines),
                spaced,
            ),
            Rule("dup_line_chars", lambda s: s.line_duplicates[1], at_most(c.max_dup_line_chars)),
            Rule(
                "newline_word_ratio",
                lambda s: ratio(s.text.count("\n"), len(s.tokens)),
                at_most(c.max_newline_word_ratio),
                spaced,
            ),
        ]
