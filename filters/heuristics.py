"""The heuristic rule chain: chosen families in order, first failing rule names the reason.

Two profiles set the defaults. `document` is the published thresholds, for web pages.
`instruction` is for instruction/response records, which are short and often code or math:
rules that would drop nearly every good record are relaxed or off (see PROFILES and
docs/curation.md for the reasoning); the repetition rules stay, because degenerate loops are
the typical failure of generated text.

Each document is judged in its language (`check(text, lang)`): rules that do not know it are
skipped and named in the verdict. English is the default, the language the published rules
were written for, so text of unknown language is judged as before.
"""

from __future__ import annotations

from typing import Iterable, Literal, Mapping, NamedTuple

from filters.c4 import C4
from filters.fineweb import FineWeb
from filters.gopher import GopherQuality, GopherRepetition
from filters.rules import RuleFamily
from filters.textstats import DEFAULT_LANGUAGE, TextStats, language_code

FAMILIES: dict[str, type[RuleFamily]] = {f.name: f for f in (GopherQuality, GopherRepetition, C4, FineWeb)}
DEFAULT_ORDER = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
EMPTY = "heuristics.empty_text"

Profile = Literal["document", "instruction"]

PROFILES: dict[str, dict] = {
    "document": {"thresholds": {}, "disable": ()},
    "instruction": {
        "thresholds": {
            # "Sort 3 1 2" is a fine instruction; 50 words is a web-page minimum. Math and code are
            # made of short tokens, so only the upper mean word length (base64, URL dumps) stays.
            "gopher_quality": {"min_words": 3, "min_mean_word_length": 1, "max_mean_word_length": 15},
            # An answer restating its question ("The capital of France is ...") repeats n-grams that
            # weigh a lot in 30 words; loops and parroting still repeat half the text or more.
            "gopher_repetition": {"max_top_ngram_chars": {}, "max_dup_ngram_chars": {5: 0.5}},
        },
        "disable": (
            "gopher_quality.stop_words",  # short imperative prompts rarely hold two of the eight
            "gopher_quality.bullet_lines",  # answers are often lists
            "gopher_quality.symbol_word_ratio",  # markdown headings and code comments use '#'
            "gopher_quality.alpha_words",  # "12 * 7 = 84" is a good answer with 1 word in 6 alphabetic
            "gopher_repetition.dup_lines",  # one repeated "}" or "```" swings a count over few lines;
            "gopher_repetition.dup_paragraphs",  # the character shares stay on
            *(f"c4.{name}" for name in ("line_long_word", "citations", "line_terminal_punct", "line_min_words")),
            *(f"c4.{name}" for name in ("line_javascript", "line_policy", "curly_bracket", "min_sentences", "no_lines_left")),
            *(f"fineweb.{name}" for name in ("punct_lines", "short_lines", "dup_line_chars", "newline_word_ratio")),
        ),
    },
}


class Verdict(NamedTuple):
    reason: str | None  # the first rule that drops the text, or None
    text: str  # the text after any rewriting
    skipped: list[str]  # rules reached but skipped because they do not know the text's language


class Heuristics:
    """Families run in the given order on one document; C4 may rewrite the text for those after it."""

    def __init__(self, families: Iterable[RuleFamily]):
        self.families = list(families)

    @classmethod
    def build(
        cls,
        rules: Iterable[str] = DEFAULT_ORDER,
        profile: Profile = "document",
        thresholds: Mapping[str, Mapping] | None = None,
        disable: Iterable[str] = (),
        enable: Iterable[str] = (),
    ) -> "Heuristics":
        """Families from names, with the profile's defaults, then `thresholds`, `disable` and `enable` on top.

        Raises ValueError naming the unknown family, rule or threshold.
        """
        rules = list(rules)
        unknown = [r for r in rules if r not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown rule family {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
        thresholds = dict(thresholds or {})
        stray = set(thresholds) - set(FAMILIES)
        if stray:
            raise ValueError(f"thresholds for unknown family {', '.join(sorted(stray))} (known: {', '.join(FAMILIES)})")
        base = PROFILES[profile]
        off = (set(base["disable"]) | set(disable)) - set(enable)
        for name in [*disable, *enable]:
            family, _, rule = name.partition(".")
            if family not in FAMILIES or not rule:
                raise ValueError(f"'{name}' is not a rule name (write family.rule, e.g. gopher_quality.word_count)")
            if rule not in FAMILIES[family]().rule_names():
                raise ValueError(f"{family} has no rule '{rule}' (its rules: {', '.join(FAMILIES[family]().rule_names())})")
        families = []
        for name in rules:
            family = FAMILIES[name]
            config = family.Config(**{**base["thresholds"].get(name, {}), **thresholds.get(name, {})})
            disabled = [n.partition(".")[2] for n in off if n.partition(".")[0] == name]
            families.append(family(config, disabled))
        return cls(families)

    def check(self, text: str, lang: str = DEFAULT_LANGUAGE) -> Verdict:
        """The verdict on a text in language `lang` (a language tag; only its primary subtag counts)."""
        if not text or not text.strip():
            return Verdict(EMPTY, text, [])
        stats = TextStats(text, language_code(lang))
        skipped: list[str] = []
        for family in self.families:
            reason, stats, skips = family.apply(stats)
            skipped += skips
            if reason:
                return Verdict(reason, stats.text, skipped)
        return Verdict(None, stats.text, skipped)
