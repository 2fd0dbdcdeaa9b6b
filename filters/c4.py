"""The C4 rules (Raffel et al. 2020, sec. 2.2), in the order of the reference `c4_utils.clean_page`.

C4 is a line filter first: lines without terminal punctuation, with fewer than 3 words, with a
1000+ character word, mentioning javascript or a cookie/terms policy are removed, and
Wikipedia-style citation marks are cut out. Two document rules look at the lines that survive
the punctuation and length checks, as in the reference: "lorem ipsum" or a curly bracket drops
the whole document. Finally a document needs 5 sentences in what is left, counted with a
tokenizer-free sentence splitter (`filters.textstats.count_sentences`). The cleaned text
replaces the original, so families after C4 see it.

The bad-words rule of the paper is left out: it is a word list, which `url_filter`-style list
filtering or a classifier covers better than a hard-coded list here.
"""

from __future__ import annotations

import re

from pydantic import Field

from filters.rules import RuleFamily, Thresholds
from filters.textstats import TextStats, count_sentences

END_MARKS = (".", "?", "!", '"', "'", "”")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")

LINE_RULES = ("line_long_word", "citations", "line_terminal_punct", "line_min_words", "line_javascript", "line_policy")
DOCUMENT_RULES = ("lorem_ipsum", "curly_bracket", "min_sentences", "no_lines_left")


class C4Config(Thresholds):
    max_word_length: int = Field(1000, description="lines with a longer word are removed")
    min_words_per_line: int = Field(3, description="lines with fewer words are removed")
    min_sentences: int = Field(5, description="fewest sentences a document keeps after line filtering")


class C4(RuleFamily):
    name = "c4"
    Config = C4Config

    def rules(self):
        return []

    def rule_names(self) -> list[str]:
        return [*LINE_RULES, *DOCUMENT_RULES]

    def apply(self, stats: TextStats) -> tuple[str | None, TextStats]:
        c, on = self.config, self.enabled
        kept: list[str] = []
        sentences = 0
        for line in stats.text.splitlines():
            line = line.strip()
            words = line.split()
            if on("line_long_word") and any(len(w) > c.max_word_length for w in words):
                continue
            if on("citations"):
                line = CITATION.sub("", line)
            if on("line_terminal_punct") and (not line.endswith(END_MARKS) or line.endswith(ELLIPSIS)):
                continue
            if on("line_min_words") and len(words) < c.min_words_per_line:
                continue
            lower = line.lower()
            if on("lorem_ipsum") and "lorem ipsum" in lower:
                return "c4.lorem_ipsum", stats
            if on("line_javascript") and "javascript" in lower:
                continue
            if on("curly_bracket") and "{" in line:
                return "c4.curly_bracket", stats
            if on("line_policy") and any(p in lower for p in POLICY_SUBSTRINGS):
                continue
            if line:
                sentences += count_sentences(line)
                kept.append(line)
        if on("min_sentences") and sentences < c.min_sentences:
            return "c4.min_sentences", stats
        if on("no_lines_left") and not kept:
            return "c4.no_lines_left", stats
        if len(kept) == len(stats.lines) and all(a == b for a, b in zip(kept, stats.lines)):
            return None, stats
        return None, TextStats("\n".join(kept))
