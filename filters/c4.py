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

C4 is English; three choices let its rules judge other languages for what they are meant to:
- a sentence may end with the marks of other scripts (`。`, `।`, `؟`...) and close with the
  quotes of other typographies (German `„…“`, French `«…»`), so a German line ending in `“` is a
  sentence, not boilerplate (the reference's marks are `. ? ! "`);
- the word rules (`line_long_word`, `line_min_words`) are skipped for languages written without
  spaces, where a whitespace token is a phrase;
- the punctuation rules (`line_terminal_punct`, `min_sentences`) are skipped for Thai and Lao,
  which mark no sentence ends.
The policy phrases stay English: on other languages they remove only English notices.
"""

from __future__ import annotations

import re

from pydantic import Field

from filters.rules import RuleFamily, Thresholds
from filters.textstats import CLOSING_QUOTES, SENTENCE_ENDS, TextStats, count_sentences, punctuated, spaced

END_MARKS = SENTENCE_ENDS + CLOSING_QUOTES
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")

LINE_RULES = ("line_long_word", "citations", "line_terminal_punct", "line_min_words", "line_javascript", "line_policy")
DOCUMENT_RULES = ("lorem_ipsum", "curly_bracket", "min_sentences", "no_lines_left")
KNOWS = {"line_long_word": spaced, "line_min_words": spaced, "line_terminal_punct": punctuated, "min_sentences": punctuated}


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

    def apply(self, stats: TextStats) -> tuple[str | None, TextStats, list[str]]:
        c = self.config
        unknown = {name for name, knows in KNOWS.items() if self.enabled(name) and not knows(stats.lang)}
        skipped = [f"c4.{name}" for name in LINE_RULES if name in unknown]
        on = {name for name in self.rule_names() if self.enabled(name) and name not in unknown}.__contains__
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
                return "c4.lorem_ipsum", stats, skipped
            if on("line_javascript") and "javascript" in lower:
                continue
            if on("curly_bracket") and "{" in line:
                return "c4.curly_bracket", stats, skipped
            if on("line_policy") and any(p in lower for p in POLICY_SUBSTRINGS):
                continue
            if line:
                sentences += count_sentences(line)
                kept.append(line)
        if "min_sentences" in unknown:
            skipped.append("c4.min_sentences")
        elif on("min_sentences") and sentences < c.min_sentences:
            return "c4.min_sentences", stats, skipped
        if on("no_lines_left") and not kept:
            return "c4.no_lines_left", stats, skipped
        if len(kept) == len(stats.lines) and all(a == b for a, b in zip(kept, stats.lines)):
            return None, stats, skipped
        return None, TextStats("\n".join(kept), stats.lang), skipped
