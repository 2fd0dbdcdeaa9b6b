"""Each heuristic rule on crafted texts that just pass and just fail its published threshold.

A rule is tested alone (the other rules of its family switched off), so a case can only fail
for the rule it is about; `test_crafted_base_text_passes_everything` shows the filler text
itself is clean under every rule.
"""

from __future__ import annotations

import pytest

from filters.c4 import C4
from filters.fineweb import FineWeb
from filters.gopher import GopherQuality, GopherRepetition
from filters.heuristics import EMPTY, Heuristics
from filters.textstats import TextStats
from text_samples import sentence_lines, unique_words


def only(family_cls, rule: str, **thresholds):
    """The family with every rule but `rule` switched off."""
    family = family_cls(family_cls.Config(**thresholds))
    others = [name for name in family.rule_names() if name != rule]
    return family_cls(family_cls.Config(**thresholds), disabled=others)


def reason(family, text: str) -> str | None:
    return family.apply(TextStats(text))[0]


# --- Gopher quality -------------------------------------------------------------------------

GOPHER_QUALITY_CASES = [
    # rule, text that just passes, text that just fails
    ("word_count", " ".join(unique_words(50)), " ".join(unique_words(49))),
    ("word_count", " ".join(unique_words(100_000, length=4)), " ".join(unique_words(100_001, length=4))),
    ("mean_word_length", " ".join(unique_words(50, 3)), " ".join(unique_words(49, 3) + ["ab"])),
    ("mean_word_length", " ".join(unique_words(50, 10)), " ".join(unique_words(49, 10) + ["a" * 11])),
    (
        "symbol_word_ratio",
        " ".join(["#" + w for w in unique_words(10)] + unique_words(90, offset=10)),
        " ".join(["#" + w for w in unique_words(11)] + unique_words(89, offset=11)),
    ),
    (
        "symbol_word_ratio",
        " ".join([w + "…" for w in unique_words(10)] + unique_words(90, offset=10)),
        " ".join([w + "..." for w in unique_words(11)] + unique_words(89, offset=11)),
    ),
    (
        "bullet_lines",
        "\n".join(["• " + w for w in unique_words(90)] + unique_words(10, offset=90)),
        "\n".join(["- " + w for w in unique_words(91)] + unique_words(9, offset=91)),
    ),
    (
        "ellipsis_lines",
        "\n".join([w + " ..." for w in unique_words(30)] + unique_words(70, offset=30)),
        "\n".join([w + "…" for w in unique_words(31)] + unique_words(69, offset=31)),
    ),
    ("alpha_words", " ".join(["123"] * 20 + unique_words(80)), " ".join(["4.56"] * 21 + unique_words(79))),
    ("stop_words", "The cat and a dog.", "The cat, the dog."),
]


@pytest.mark.parametrize("rule,passing,failing", GOPHER_QUALITY_CASES, ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "")
def test_gopher_quality_rule_threshold(rule, passing, failing):
    family = only(GopherQuality, rule)
    assert reason(family, passing) is None
    assert reason(family, failing) == f"gopher_quality.{rule}"


# --- Gopher repetition ----------------------------------------------------------------------


def repeated_blocks(unique: int, copies: int, sep: str) -> str:
    """`unique` distinct blocks of one length, then `copies` repeats of the first block."""
    blocks = [" ".join(unique_words(4, offset=4 * i)) for i in range(unique)]
    return sep.join(blocks + blocks[:1] * copies)


def ngram_text(n: int, copies: int, fillers: int) -> str:
    """A word n-gram `copies` times, each copy followed by an equal share of distinct filler words."""
    gram = unique_words(n, offset=500_000)
    filler = unique_words(fillers)
    per = [filler[i::copies] for i in range(copies)]
    return " ".join(w for chunk in per for w in gram + chunk)


def dup_ngram_case(n: int, limit: float) -> tuple[str, str]:
    """Texts whose repeated n-gram share is exactly `limit` (passes) and just above it (fails)."""
    repeats = next(m for m in range(1, 100) if abs(n * m / limit - round(n * m / limit)) < 1e-9)
    total = round(n * repeats / limit)
    copies = repeats + 1
    return ngram_text(n, copies, total - n * copies), ngram_text(n, copies, total - n * copies - 1)


REPETITION_CASES = [
    ("dup_paragraphs", repeated_blocks(7, 3, "\n\n"), repeated_blocks(6, 4, "\n\n")),
    ("dup_paragraph_chars", repeated_blocks(80, 20, "\n\n"), repeated_blocks(79, 21, "\n\n")),
    ("dup_lines", repeated_blocks(7, 3, "\n"), repeated_blocks(6, 4, "\n")),
    ("dup_line_chars", repeated_blocks(80, 20, "\n"), repeated_blocks(79, 21, "\n")),
    # top n-gram share = copies * n * 5 / (5 * words)
    ("top_2gram", ngram_text(2, 5, 40), ngram_text(2, 5, 39)),
    ("top_3gram", ngram_text(3, 3, 41), ngram_text(3, 3, 40)),
    ("top_4gram", ngram_text(4, 2, 42), ngram_text(4, 2, 41)),
    *((f"dup_{n}gram", *dup_ngram_case(n, limit)) for n, limit in GopherRepetition.Config().max_dup_ngram_chars.items()),
]


@pytest.mark.parametrize("rule,passing,failing", REPETITION_CASES, ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "")
def test_gopher_repetition_rule_threshold(rule, passing, failing):
    family = only(GopherRepetition, rule)
    assert reason(family, passing) is None
    assert reason(family, failing) == f"gopher_repetition.{rule}"


def test_top_ngram_seen_once_is_not_repetition():
    family = only(GopherRepetition, "top_2gram")
    assert reason(family, "Write a haiku about autumn") is None


def test_overlapping_repeats_never_count_a_word_twice():
    stats = TextStats(" ".join(["la"] * 200))
    assert 0.9 < stats.duplicate_ngram_char_fraction(5) <= 1.0


# --- C4 -------------------------------------------------------------------------------------


def c4_apply(text: str, **disabled_or_thresholds) -> tuple[str | None, str]:
    reason, stats, _ = C4(C4.Config(**disabled_or_thresholds)).apply(TextStats(text))
    return reason, stats.text


BODY = sentence_lines(5)


@pytest.mark.parametrize(
    "kept_line,removed_line",
    [
        ("It ended well, she said.", "It ended well, she said"),  # terminal punctuation
        ('He shouted "stop!"', "It ended well..."),  # a quote ends a sentence, an ellipsis does not
        ("Three words here.", "Two words."),  # at least 3 words
        ("A long " + "x" * 1000 + " word.", "A long " + "x" * 1001 + " word."),  # max word length
        ("Java is a language.", "Please enable JavaScript to see this page."),
        ("Our policy is simple.", "Read our privacy policy for details."),
        ("This site likes people.", "This site uses cookies to improve it."),
    ],
)
def test_c4_line_rules_remove_lines_and_keep_the_rest(kept_line, removed_line):
    reason, text = c4_apply("\n".join([*BODY, kept_line, removed_line]))
    assert reason is None
    assert text.splitlines() == [*BODY, kept_line]


def test_c4_removes_citation_marks():
    reason, text = c4_apply("\n".join([*BODY, "Paris is in France.[1][citation needed]"]))
    assert reason is None and text.splitlines()[-1] == "Paris is in France."


def test_c4_unchanged_text_keeps_its_layout():
    text = "\n\n".join(BODY)
    assert c4_apply(text) == (None, text)


@pytest.mark.parametrize(
    "rule,passing_line,failing_line",
    [
        ("lorem_ipsum", "Lorem is a word, ipsum another.", "Lorem ipsum dolor sit amet."),
        ("curly_bracket", "Brackets (round) are fine.", "function f() { return 1; }."),
    ],
)
def test_c4_document_rules(rule, passing_line, failing_line):
    assert c4_apply("\n".join([*BODY, passing_line]))[0] is None
    assert c4_apply("\n".join([*BODY, failing_line]))[0] == f"c4.{rule}"


def test_c4_document_rules_only_see_lines_that_survive_punctuation_and_length():
    assert c4_apply("\n".join([*BODY, "lorem ipsum", "{ menu"]))[0] is None


def test_c4_min_sentences():
    assert c4_apply("\n".join(sentence_lines(5)))[0] is None
    assert c4_apply("\n".join(sentence_lines(4)))[0] == "c4.min_sentences"
    assert c4_apply("One. Two is here. Three is here. Four is here! Five is here?")[0] is None
    assert c4_apply("One. Two is here. Three is here. Four is here!")[0] == "c4.min_sentences"


def test_c4_no_lines_left_when_sentence_rule_is_off():
    family = C4(disabled=["min_sentences"])
    assert reason(family, "menu\nhome\nabout us") == "c4.no_lines_left"


# --- FineWeb --------------------------------------------------------------------------------


def lines_of(n: int, end: str = "", length: int = 40, offset: int = 0) -> list[str]:
    """n distinct lines of exactly `length` characters, ending with `end`."""
    words = unique_words(n, length=length - len(end), offset=offset)
    return [w + end for w in words]


FINEWEB_CASES = [
    ("punct_lines", lines_of(12, ".") + lines_of(88, offset=12), lines_of(11, "!") + lines_of(89, offset=11)),
    (
        "short_lines",
        lines_of(67, length=30) + lines_of(33, length=31, offset=67),
        lines_of(68, length=30) + lines_of(32, length=31, offset=68),
    ),
    ("dup_line_chars", lines_of(99) + lines_of(1), lines_of(98) + lines_of(2)),
]


@pytest.mark.parametrize("rule,passing,failing", FINEWEB_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_fineweb_rule_threshold(rule, passing, failing):
    family = only(FineWeb, rule)
    assert reason(family, "\n".join(passing)) is None
    assert reason(family, "\n".join(failing)) == f"fineweb.{rule}"


def test_fineweb_newline_word_ratio():
    family = only(FineWeb, "newline_word_ratio")
    words = unique_words(30)
    passing = "\n".join(" ".join(words[i : i + 3]) for i in range(0, 30, 3))  # 9 breaks / 30 words
    failing = "\n".join(" ".join(words[i : i + 3]) for i in range(0, 30, 3)) + "\n"  # 10 / 30
    assert reason(family, passing) is None
    assert reason(family, failing) == "fineweb.newline_word_ratio"


# --- the chain ------------------------------------------------------------------------------


def test_crafted_base_text_passes_everything():
    text = "\n".join(sentence_lines(12))
    assert Heuristics.build().check(text) == (None, text, [])


def test_first_failing_rule_names_the_reason():
    # fails Gopher's word count, C4's sentence count and FineWeb's short-line ratio at once
    text = "Home\nAbout us\nContact the team"
    assert Heuristics.build(["gopher_quality", "c4", "fineweb"]).check(text)[0] == "gopher_quality.word_count"
    assert Heuristics.build(["c4", "fineweb", "gopher_quality"]).check(text)[0] == "c4.min_sentences"
    assert Heuristics.build(["fineweb", "c4"]).check(text)[0] == "fineweb.punct_lines"
    assert Heuristics.build(["fineweb", "c4"], disable=["fineweb.punct_lines"]).check(text)[0] == "fineweb.short_lines"


def test_c4_rewrite_is_what_later_families_see():
    nav = ["Home", "Products", "Login"] * 3
    text = "\n".join(nav + sentence_lines(12))
    assert Heuristics.build(["fineweb"]).check(text)[0] == "fineweb.dup_line_chars"
    reason, cleaned, _ = Heuristics.build(["c4", "fineweb"]).check(text)
    assert reason is None and cleaned == "\n".join(sentence_lines(12))


def test_thresholds_override_and_disable():
    text = " ".join(unique_words(20))
    assert Heuristics.build(["gopher_quality"], disable=["gopher_quality.stop_words"]).check(text)[0] == "gopher_quality.word_count"
    relaxed = Heuristics.build(["gopher_quality"], thresholds={"gopher_quality": {"min_words": 20}}, disable=["gopher_quality.stop_words"])
    assert relaxed.check(text)[0] is None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rules": ["gopher"]}, "unknown rule family gopher"),
        ({"disable": ["c4.lorem"]}, "c4 has no rule 'lorem'"),
        ({"disable": ["word_count"]}, "is not a rule name"),
        ({"thresholds": {"gopher_quality": {"min_word": 3}}}, "min_word"),
        ({"thresholds": {"c5": {}}}, "unknown family c5"),
    ],
)
def test_bad_settings_are_refused_with_the_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Heuristics.build(**kwargs)


def test_empty_text_has_its_own_reason():
    assert Heuristics.build().check(" \n ")[0] == EMPTY


INSTRUCTIONS = [
    "Sort these numbers: 3, 1, 2.\n\n1, 2, 3",
    "Write a function that adds two numbers.\n\n```python\ndef add(a, b):\n    return a + b\n```",
    "What is 12 * 7 + 3?\n\n12 * 7 = 84, and 84 + 3 = 87.",
    "List three fruits.\n\n- apple\n- banana\n- cherry",
    "What is the capital of France?\n\nThe capital of France is Paris.",
]


@pytest.mark.parametrize("text", INSTRUCTIONS)
def test_instruction_profile_keeps_short_good_records(text):
    assert Heuristics.build().check(text)[0] is not None  # web-page thresholds would drop them
    assert Heuristics.build(profile="instruction").check(text) == (None, text, [])


def test_instruction_profile_still_drops_degenerate_loops():
    looping = "Tell me a story.\n\n" + "Once upon a time there was a cat. " * 20
    assert Heuristics.build(profile="instruction").check(looping)[0].startswith("gopher_repetition.")
    assert Heuristics.build(profile="instruction").check("Lorem ipsum dolor sit amet, consectetur.")[0] == "c4.lorem_ipsum"
