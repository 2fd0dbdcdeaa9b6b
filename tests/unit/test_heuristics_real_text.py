"""The heuristic chain on real extracted web text: no crash, and reasons that mean what they say."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from filters.c4 import CITATION, END_MARKS
from filters.heuristics import EMPTY, FAMILIES, Heuristics
from filters.textstats import TextStats
from text_samples import extracted_pages


@pytest.fixture(scope="module")
def pages(shared_data):
    return extracted_pages(shared_data, 60)


def rule_names() -> set[str]:
    return {EMPTY} | {f"{name}.{rule}" for name, family in FAMILIES.items() for rule in family().rule_names()}


def test_real_pages_get_valid_reasons_and_clean_kept_text(pages):
    chain = Heuristics.build()
    results = [chain.check(text) for text in pages]
    reasons = Counter(reason for reason, _ in results)
    assert set(reasons) <= rule_names() | {None}
    assert reasons[None] and sum(reasons.values()) - reasons[None], f"expected both kept and dropped pages: {reasons}"
    for (reason, cleaned), original in zip(results, pages):
        if reason is None:
            lines = cleaned.splitlines()
            assert all(line.endswith(END_MARKS) for line in lines)
            assert set(lines) <= {CITATION.sub("", line.strip()) for line in original.splitlines()}


def test_each_reason_is_true_of_the_text_it_dropped(pages):
    """Re-scoring a dropped page with only the rule it was dropped for must fail that rule again."""
    chain = Heuristics.build(["gopher_repetition", "gopher_quality", "fineweb"])
    for text in pages:
        reason, _ = chain.check(text)
        if reason in (None, EMPTY):
            continue
        family, rule = reason.split(".")
        alone = FAMILIES[family](disabled=[r for r in FAMILIES[family]().rule_names() if r != rule])
        assert alone.apply(TextStats(text))[0] == reason


def test_english_stop_words_drop_german_pages_and_not_english_ones(pages):
    rule = Heuristics.build(["gopher_quality"], disable=[f"gopher_quality.{r}" for r in ("word_count", "mean_word_length", "symbol_word_ratio", "bullet_lines", "ellipsis_lines", "alpha_words")])
    seen = Counter()
    for text in pages:
        words = re.findall(r"\w+", text.lower())
        english = sum(w in {"the", "and", "of", "to"} for w in words)
        german = sum(w in {"der", "die", "und", "das"} for w in words)
        if len(words) > 100 and english > 3 * german + 5:
            seen["english"] += 1
            assert rule.check(text)[0] is None
        if len(words) > 100 and german > 10 and english == 0:
            seen["german"] += 1
            assert rule.check(text)[0] == "gopher_quality.stop_words"
    assert seen["english"] and seen["german"], seen
